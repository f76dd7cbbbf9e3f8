"""Load that runs while the suite does something else, collected when a check needs it.

``BackgroundLoad`` starts one :func:`~meshproof.load.run_load` per named plan,
each in a thread of its own (``run_load`` only waits on its Locust subprocess,
so the threads cost nothing while Locust works). A run ends at its plan's run
time, or earlier once ``release()`` was called and it has what it was started
for (``enough``, e.g. the sample size a judgement needs); ``close()`` ends
every run at its next poll. ``results()`` waits for the runs, each within its
plan's hard bound, and gives each name its ``LoadResult`` or the error that
stopped it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from meshproof.errors import MeshproofError
from meshproof.load.plan import LoadPlan, LoadProgress
from meshproof.load.results import LoadResult
from meshproof.load.runner import run_load

__all__ = ["BackgroundLoad"]


class BackgroundLoad:
    """Named load runs started at once and collected later."""

    def __init__(
        self,
        plans: Mapping[str, LoadPlan],
        *,
        enough: Callable[[LoadProgress], bool] | None = None,
        not_started: Mapping[str, str] | None = None,
    ) -> None:
        """Start every plan now; ``not_started`` names runs that could not be planned, and why."""
        self.not_started: dict[str, str] = dict(not_started or {})
        self.started_at = time.time()
        self._released = threading.Event()
        self._closed = threading.Event()
        self._enough = enough
        self._plans = {
            name: dataclasses.replace(plan, stop_when=self._should_stop)
            for name, plan in plans.items()
        }
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self._plans)), thread_name_prefix="meshproof-load"
        )
        self._futures: dict[str, Future[LoadResult]] = {
            name: self._pool.submit(run_load, plan) for name, plan in self._plans.items()
        }
        self._results: dict[str, LoadResult | MeshproofError] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The runs that were started."""
        return tuple(self._plans)

    def _should_stop(self, progress: LoadProgress) -> bool:
        if self._closed.is_set():
            return True
        if not self._released.is_set():
            return False
        return self._enough is None or self._enough(progress)

    def release(self) -> None:
        """What the load went along with is over: each run stops once it has ``enough``."""
        self._released.set()

    def results(self) -> dict[str, LoadResult | MeshproofError]:
        """Wait for every run (each within its hard bound); a result or an error per name.

        Implies ``release()``: nothing else is waited for once the results are wanted.
        """
        if self._results is not None:
            return dict(self._results)
        self.release()
        results: dict[str, LoadResult | MeshproofError] = {}
        for name, future in self._futures.items():
            plan = self._plans[name]
            try:
                results[name] = future.result(timeout=plan.hard_timeout_s + plan.stop_s)
            except FutureTimeout:
                self._closed.set()
                results[name] = MeshproofError(
                    f"load {name}: still running after {plan.hard_timeout_s + plan.stop_s:.0f} s"
                )
            except MeshproofError as exc:
                results[name] = exc
        self._results = results
        return dict(results)

    def close(self) -> None:
        """End every run that still goes, and wait for them (each within its bound)."""
        self._closed.set()
        self.results()
        self._pool.shutdown(wait=False)
