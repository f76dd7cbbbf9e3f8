"""The drill in progress in this process: its target, run id, changes, probes and record.

Chaos Toolkit runs an experiment's activities one after the other in one
process, so what one activity starts (a fault, the probe agents, a traffic
recorder) the next one finds here. The target comes from the experiment's
configuration key ``meshproof_target`` or the environment (``MESHPROOF_TARGET``);
the run id from ``meshproof_run_id`` / ``MESHPROOF_RUN_ID``, else one is made
for the process. ``meshproof run --profile drill`` calls ``begin`` first so the
experiment runs under the runner's run id.

Every write goes through one ``meshproof.safety.Changes`` per cluster (labelled
with the run id and recorded in the cluster before it is made); ``undo``
takes them back, and ``meshproof recover`` finds what a killed drill left.
"""

from __future__ import annotations

import atexit
import datetime as dt
import itertools
import os
import secrets
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from meshproof.catalog import Catalog, EffectiveThresholds, load_catalog
from meshproof.connections import Connections, open_connections
from meshproof.errors import ConfigError, MeshproofError
from meshproof.probe.fleet import DEFAULT_IMAGE, ProbeFleet
from meshproof.safety import Changes, require_allowed, run_lock
from meshproof.sli.verdict import Judgement
from meshproof.target import Target, load_target

__all__ = [
    "RUN_ID_ENV",
    "TARGET_ENV",
    "Drill",
    "DrillProbes",
    "begin",
    "current",
    "drill_for",
    "finish",
]

TARGET_ENV = "MESHPROOF_TARGET"
"""The target file (or ``lab``) an experiment runs against when its configuration names none."""
RUN_ID_ENV = "MESHPROOF_RUN_ID"
"""The run id every change is labelled with; the runner passes its own."""

_lock = threading.Lock()
_drills = itertools.count(1)
_current: Drill | None = None


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass(slots=True)
class DrillProbes(ProbeFleet):
    """A drill's own probe agents, apart from the nightly's (a preupgrade run has both) and
    from an earlier drill's, whose namespace may still be terminating; labelled with the
    run id like them, so ``meshproof recover`` finds them too."""

    drill: int = 0

    @property
    def namespace(self) -> str:
        return f"meshproof-drill-{self.run_id}-{self.drill}"[:63].rstrip("-")


@dataclass(slots=True)
class Drill:
    """One drill: the target, its connections and everything the experiment did so far."""

    target: Target
    run_id: str
    connections: Connections
    catalog: Catalog = field(default_factory=load_catalog)
    changes: dict[str, Changes] = field(default_factory=dict)
    fleet: DrillProbes | None = None
    recorders: dict[str, Any] = field(default_factory=dict)
    """Traffic recorders by name (``meshproof.chaos.traffic.TrafficRecorder``)."""
    moments: dict[str, float] = field(default_factory=dict)
    """Named instants (``fault-start``, ``fault-end``), as ``time.time()``."""
    timeline: list[dict[str, Any]] = field(default_factory=list)
    """The drill's moments for the report: at, phase, description, cluster."""
    faults: list[tuple[str, str]] = field(default_factory=list)
    """(cluster, fault) of every fault applied, in order."""
    measurements: dict[str, Any] = field(default_factory=dict)
    """What the probes measured, by name (the judges read these)."""
    judgements: dict[str, Judgement] = field(default_factory=dict)
    """The judged guarantees, by id."""
    locked_outside: bool = False
    """The run lock and the sweep of dead runs' leftovers are the caller's (``begin``);
    otherwise the first fault in a cluster takes its run lock, held until ``close``."""
    _locks: ExitStack = field(default_factory=ExitStack)

    def cluster(self, name: str) -> str:
        """``name`` checked against the target's clusters."""
        if name not in self.target.cluster_names:
            raise ConfigError(
                f"cluster {name!r} is not a cluster of target {self.target.name!r} "
                f"({', '.join(self.target.cluster_names)}); set the experiment's cluster "
                "configuration to one of them")
        return name

    def others(self, name: str) -> list[str]:
        """Every cluster of the target but ``name``."""
        return [c for c in self.target.cluster_names if c != name]

    def changes_in(self, cluster: str) -> Changes:
        """The run's ``Changes`` for ``cluster`` (made on first use)."""
        if cluster not in self.changes:
            self.changes[cluster] = Changes(self.connections.api(cluster), cluster, self.run_id)
        return self.changes[cluster]

    def allow(self, cluster: str, fault: str) -> Changes:
        """Refuse unless the blast radius allows ``fault`` in ``cluster``; then its ``Changes``."""
        require_allowed(self.target, self.cluster(cluster), fault)
        if not self.locked_outside and all(c != cluster for c, _ in self.faults):
            self._locks.enter_context(run_lock(self.connections.api(cluster), self.run_id,
                                               self.target.resolved_timeouts))
        if (cluster, fault) not in self.faults:
            self.faults.append((cluster, fault))
        return self.changes_in(cluster)

    def probes(self) -> DrillProbes:
        """The run's probe agents, deployed into every cluster on first use."""
        if self.fleet is None:
            fleet = DrillProbes(self.connections.apis, self.run_id,
                                self.target.resolved_timeouts,
                                image=self.target.probe.image or DEFAULT_IMAGE,
                                drill=next(_drills))
            self.fleet = fleet
            fleet.deploy()
        return self.fleet

    def mark(self, name: str, phase: str, description: str, *, cluster: str | None = None,
             at: float | None = None) -> float:
        """Remember instant ``name`` and put it on the timeline; returns it."""
        when = time.time() if at is None else at
        self.moments[name] = when
        self.note(phase, description, cluster=cluster, at=when)
        return when

    def note(self, phase: str, description: str, *, cluster: str | None = None,
             at: float | None = None) -> None:
        """Put a moment on the timeline."""
        stamp = (dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="milliseconds")
                 if at is not None else _now_iso())
        self.timeline.append({"at": stamp, "phase": phase, "description": description,
                              "cluster": cluster})

    def thresholds(self, guarantee_id: str) -> EffectiveThresholds:
        """The guarantee's thresholds on this target (catalog plus the target's overrides)."""
        return self.target.effective_thresholds(self.catalog, guarantee_id)

    def settle(self, guarantee_id: str, judgement: Judgement) -> dict[str, Any]:
        """Record ``judgement`` as the drill's verdict of ``guarantee_id`` (and on the
        timeline); fails the activity unless it held, else its result for the journal."""
        self.judgements[guarantee_id] = judgement
        self.note("verdict", f"{judgement.verdict.value}: {judgement.reason}")
        if not judgement.held:
            raise ActivityFailed(f"{judgement.verdict.value}: {judgement.reason}")
        return {"guarantee": guarantee_id, "verdict": judgement.verdict.value,
                "reason": judgement.reason, "evidence": judgement.evidence}

    def undo(self) -> list[str]:
        """Take back every change of the drill, newest cluster first; one line each."""
        lines: list[str] = []
        for cluster in reversed(list(self.changes)):
            lines.extend(self.changes[cluster].undo())
        return lines

    def close(self) -> None:
        """Stop the recorders, remove the probe agents and release the run locks taken."""
        for recorder in self.recorders.values():
            recorder.stop()
        try:
            if self.fleet is not None:
                self.fleet.remove()
                self.fleet = None
        finally:
            self._locks.close()


def begin(target: Target, run_id: str, changes: dict[str, Changes],
          connections: Connections) -> Drill:
    """Start a drill on ``target`` under ``run_id`` whose run locks the caller holds and
    whose writes go to ``changes`` (``meshproof.safety.destructive_run`` makes both)."""
    global _current
    with _lock:
        _current = Drill(target=target, run_id=run_id, connections=connections,
                         changes=dict(changes), locked_outside=True)
        return _current


def current() -> Drill | None:
    """The drill in progress, if any."""
    return _current


def finish() -> Drill | None:
    """End the drill in progress (its changes must have been undone); returns it."""
    global _current
    with _lock:
        done, _current = _current, None
    return done


def drill_for(configuration: dict[str, Any] | None) -> Drill:
    """The drill the activities of an experiment share, started on first use.

    The target is ``configuration["meshproof_target"]``, else ``$MESHPROOF_TARGET``;
    a drill already running on another target is a configuration error.
    """
    global _current
    config = configuration or {}
    spec = str(config.get("meshproof_target") or os.environ.get(TARGET_ENV) or "")
    with _lock:
        if _current is not None:
            source = _current.target.source
            if not spec or spec == "lab" or (source is not None
                                             and Path(spec).expanduser().resolve() == source):
                return _current
            raise ConfigError(
                f"a drill on target {_current.target.name!r} is running in this process; "
                f"target {spec!r} cannot start another")
        if not spec:
            raise ConfigError(
                f"no target for the experiment: set {TARGET_ENV} (a target file or `lab`) or "
                "the configuration key meshproof_target")
        target = load_target(spec)
        run_id = str(config.get("meshproof_run_id") or os.environ.get(RUN_ID_ENV)
                     or secrets.token_hex(4))
        _current = Drill(target=target, run_id=run_id,
                         connections=open_connections(target,
                                                      timeouts=target.resolved_timeouts))
        # Plain `chaos run` skips the rollbacks of a failed experiment unless told
        # otherwise; the process still takes back what it changed before it exits.
        atexit.register(_leave, _current)
        return _current


def _leave(drill: Drill) -> None:
    """At exit: undo what is left of ``drill``'s changes and remove its probes."""
    try:
        for line in drill.undo():
            sys.stderr.write(f"meshproof: undo {line}\n")
        drill.close()
    except MeshproofError as exc:
        sys.stderr.write(f"meshproof: {exc}; run `meshproof recover`\n")
