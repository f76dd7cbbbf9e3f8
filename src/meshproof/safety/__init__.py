"""Safety of destructive runs: blast radius, run lock, marked changes, rollback and recovery.

- ``require_allowed`` refuses a fault the target's ``destructive.allowed`` does not
  list, before any write (``DestructiveRefused``, exit 2 at the CLI).
- ``run_lock`` holds a ``coordination.k8s.io/v1`` Lease per cluster; a second live
  run is refused (``RunLocked``).
- ``Changes`` makes a run's writes in one cluster, each recorded in the cluster
  first (``RUN_ID_LABEL`` on created objects, ``CHANGED_BY_ANNOTATION`` on changed
  ones, an undo record for the way back), and undoes them in reverse order.
- ``sweep`` undoes what dead runs left; ``claimed_run`` locks every cluster and
  sweeps at the start of a run; ``recover_target`` is ``meshproof recover``.
- ``interrupts_raise`` / ``signals_deferred`` make rollbacks run on SIGINT / SIGTERM.
- ``destructive_run`` puts it all together for one destructive activity.

See docs/safety.md.
"""

from __future__ import annotations

from meshproof.safety.blast import DestructiveRefused, require_all_allowed, require_allowed
from meshproof.safety.changes import Changes, UndoIncomplete
from meshproof.safety.destructive import destructive_run
from meshproof.safety.lock import RunLocked, run_lock
from meshproof.safety.marks import CHANGED_BY_ANNOTATION, RUN_ID_LABEL, semantic_view
from meshproof.safety.recover import recover_target
from meshproof.safety.signals import interrupts_raise, signals_deferred
from meshproof.safety.sweep import claimed_run, sweep, sweep_dead_runs

__all__ = [
    "CHANGED_BY_ANNOTATION",
    "RUN_ID_LABEL",
    "Changes",
    "DestructiveRefused",
    "RunLocked",
    "UndoIncomplete",
    "destructive_run",
    "claimed_run",
    "interrupts_raise",
    "recover_target",
    "require_all_allowed",
    "require_allowed",
    "run_lock",
    "semantic_view",
    "signals_deferred",
    "sweep",
    "sweep_dead_runs",
]
