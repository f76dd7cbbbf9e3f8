"""``destructive_run``: the safety rules of a destructive activity, in the order they apply."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import IO

from meshproof.clients.kube import ClusterApi
from meshproof.safety.blast import require_all_allowed
from meshproof.safety.changes import Changes
from meshproof.safety.lock import run_lock
from meshproof.safety.signals import interrupts_raise
from meshproof.safety.sweep import sweep
from meshproof.target import Target
from meshproof.timeouts import Timeouts

__all__ = ["destructive_run"]


@contextmanager
def destructive_run(target: Target, apis: Mapping[str, ClusterApi], run_id: str,
                    faults: Mapping[str, Iterable[str]], *, timeouts: Timeouts | None = None,
                    dry_run: bool = False, out: IO[str] | None = None
                    ) -> Iterator[dict[str, Changes]]:
    """Yield one ``Changes`` per cluster named in ``faults`` ({cluster: [fault, ...]}).

    In order: every (cluster, fault) is checked against the blast radius before
    anything is written (``DestructiveRefused``); the run lock is taken in each of
    those clusters (``RunLocked`` when another live run holds one); leftovers of
    dead runs there are swept (lines to ``out``); then the block runs. However
    it ends — an error, Ctrl-C, SIGTERM, SIGHUP — every change is undone and the
    locks are released. With ``dry_run`` nothing is written: the Changes print
    what they would do.
    """
    faults = {cluster: list(names) for cluster, names in faults.items()}
    require_all_allowed(target, faults)
    timeouts = timeouts or target.resolved_timeouts
    stream = out or sys.stdout
    with interrupts_raise(), ExitStack() as stack:
        changes: dict[str, Changes] = {}
        for cluster in faults:
            api = apis[cluster]
            if dry_run:
                stream.write(f"dry-run {cluster}: would take the run lock and sweep leftovers "
                             f"of dead runs, then apply {', '.join(faults[cluster])}\n")
            else:
                stack.enter_context(run_lock(api, run_id, timeouts))
                for line in sweep(api, cluster, keep_run=run_id):
                    stream.write(f"sweep {line}\n")
            changes[cluster] = stack.enter_context(
                Changes(api, cluster, run_id, dry_run=dry_run, out=stream))
        yield changes
