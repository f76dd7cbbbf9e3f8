"""Traffic through the mesh during a drill, made by an in-mesh probe agent and timed.

A ``TrafficRecorder`` keeps one probe agent busy with small batches of
requests to one URL for as long as the drill needs (bounded by ``max_s``), and
keeps every answer with the moment it was made and the cluster that served it
(the pod name a response names, looked up among the service's pods in every
cluster). ``Sample`` lists are judged by the pure functions below.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshproof.errors import MeshproofError
from meshproof.probe.fleet import ProbeFleet

__all__ = [
    "Sample",
    "TrafficRecorder",
    "first_answer_from",
    "served_by",
    "success_between",
]

BATCH = 10
"""Requests per agent call: short calls keep the timing of each request close."""
KEEP_BODY = 256
"""Bytes of each body kept: enough for a pod name."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One request the agent made."""

    at: float
    """When it was sent (``time.time()``), estimated within its batch from the latencies."""
    status: int
    """HTTP status; 0 when no answer came (reset, refused, timeout)."""
    served_by: str | None
    """The cluster whose pod answered, when the body names one."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def served_by(body: str, pods: Mapping[str, str]) -> str | None:
    """The cluster of the first pod (name → cluster) whose name ``body`` contains."""
    for pod, cluster in pods.items():
        if pod and pod in body:
            return cluster
    return None


def samples_of(start: float, attempts: Iterable[Mapping[str, Any]],
               pods: Mapping[str, str]) -> list[Sample]:
    """The agent's attempts of one batch sent from ``start``, one after the other."""
    out: list[Sample] = []
    at = start
    for attempt in attempts:
        out.append(Sample(at=at, status=int(attempt.get("status") or 0),
                          served_by=served_by(str(attempt.get("body") or ""), pods)))
        at += float(attempt.get("latency_ms") or 0.0) / 1000.0
    return out


def success_between(samples: Sequence[Sample], start: float, end: float) -> tuple[int, int]:
    """(successful, total) among the requests sent in ``[start, end]``."""
    window = [s for s in samples if start <= s.at <= end]
    return sum(1 for s in window if s.ok), len(window)


def first_answer_from(samples: Sequence[Sample], cluster: str, after: float) -> float | None:
    """When the first successful request sent after ``after`` was served by ``cluster``."""
    for sample in samples:
        if sample.at >= after and sample.ok and sample.served_by == cluster:
            return sample.at
    return None


class TrafficRecorder:
    """Requests from ``cluster``'s in-mesh probe to ``url`` in a background thread."""

    def __init__(self, fleet: ProbeFleet, cluster: str, url: str, *,
                 pods: Mapping[str, str], max_s: float, timeout: float,
                 on_error: Callable[[Exception], None] | None = None) -> None:
        self.fleet = fleet
        self.cluster = cluster
        self.url = url
        self.pods = dict(pods)
        self.max_s = max_s
        self.timeout = timeout
        self.errors: list[str] = []
        self._on_error = on_error
        self._samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"traffic-{cluster}",
                                        daemon=True)
        self.started = 0.0

    def start(self) -> None:
        self.started = time.time()
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        spec = {"url": self.url, "count": BATCH, "timeout": self.timeout,
                "keep_body": KEEP_BODY}
        while not self._stop.is_set() and time.monotonic() < deadline:
            sent = time.time()
            try:
                answer = self.fleet.request(self.cluster, "mesh", spec)
            except MeshproofError as exc:
                # The agent is reached through the API server, which a drill may disturb;
                # a failed call is noted and the recorder goes on.
                self.errors.append(str(exc)[:200])
                if self._on_error is not None:
                    self._on_error(exc)
                self._stop.wait(0.5)
                continue
            batch = samples_of(sent, answer.get("results") or [], self.pods)
            self._samples.extend(batch)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout * BATCH + 30)

    @property
    def samples(self) -> list[Sample]:
        return list(self._samples)

    def summary(self) -> dict[str, Any]:
        """Totals for the report's load section."""
        samples = self.samples
        elapsed = max(1e-9, (samples[-1].at - samples[0].at) if len(samples) > 1 else 1.0)
        failures = sum(1 for s in samples if not s.ok)
        return {"requests": len(samples), "failures": failures,
                "rps": round(len(samples) / elapsed, 2), "url": self.url,
                "cluster": self.cluster, "agent_errors": len(self.errors)}
