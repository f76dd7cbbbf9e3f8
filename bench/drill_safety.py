"""Drill safety: drills killed with SIGKILL at random moments, then ``meshproof recover``.

On a lab with the mesh, each trial runs one drill experiment the way
experiments/README.md shows (``chaos run --rollback-strategy always
experiments/<drill>.json``, a random experiment and fault cluster, the client
cluster the next one), under a run id of its own (``MESHPROOF_RUN_ID``). The
drill is killed — its whole process group, SIGKILL, so no rollback runs — at a
random moment. On one pass over the experiments: after a random number of the
activities Chaos Toolkit announces (``Probe: ...`` / ``Action: ...``) plus a
fraction of a second (before its first change, with a fault on, during its
restore or its rollbacks); on the next: a random time just after its first
change is recorded (an undo record of its run id appears); and so on in turn,
so that half the kills of every experiment aim at a change in place. A drill
that ends before its moment comes is run again (at most ``ATTEMPTS`` runs),
killed after a random activity, so every trial is a kill. Then
``meshproof recover --target`` runs, and what is left is counted in every
cluster:

- undo records and the run lock Lease;
- objects labelled with a run id (its probe namespace, anything it created), unless
  already being deleted;
- objects still annotated as changed by a run;
- Deployments whose replicas, and mesh config objects whose contents, differ
  from the snapshot taken before the first trial (deleted and not re-created
  included).

The same count taken between the kill and ``recover`` is the baseline: what the
kills left for ``recover`` to find. Goal: nothing remains after ``recover``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.figure import CannotRun, Figure, run_benchmark
from bench.labs import bench_lab, meshproof_command
from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.connections import open_connections
from meshproof.errors import MeshproofError
from meshproof.safety.lock import LEASE_PATH
from meshproof.safety.marks import CHANGED_BY_ANNOTATION, RUN_ID_LABEL, semantic_view
from meshproof.safety.records import exists, list_records
from meshproof.safety.sweep import LABELLED_KINDS
from meshproof.target import Target, load_target
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually

__all__ = ["EXPERIMENTS", "KillPoint", "Leftovers", "activities", "count_leftovers",
           "kill_point", "main", "measure", "state_differences"]

NAME = "drill_safety"
TRIALS = int(os.environ.get("MESHPROOF_BENCH_DRILL_TRIALS", "20"))
SEED = int(os.environ.get("MESHPROOF_BENCH_SEED") or random.SystemRandom().randrange(2**32))
ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("eastwest-gateway-loss", "istiod-outage", "circuit-breaker-trip",
               "backup-restore")
"""The drill experiments of experiments/ (docs/drills.md), each tried in turn."""
HOLD_S = "2"
"""``MESHPROOF_FAULT_HOLD_S`` for the trials: a fault held 2 s after detection. What is
measured is what a kill leaves behind, not the drill's verdict; the fault is on all the same."""
ATTEMPTS = 4
"""Runs of one trial's drill at most, when it ends before its kill moment comes."""
KILL_JITTER_S = 1.5
"""After the chosen activity is announced, the kill comes up to this much later (inside it)."""
CHANGE_SPREAD_S = 4.0
"""Half the kills come up to this long after a drill's first recorded change: with the fault
on (held ``HOLD_S`` after its detection) or while it is restored. The drills' faults last a
few seconds on the lab (mesh config loss under two), so a later kill finds them undone."""
DEPLOYMENTS = "/apis/apps/v1/deployments"
MESH_CONFIG = ("/apis/networking.istio.io/v1/virtualservices",
               "/apis/networking.istio.io/v1/destinationrules",
               "/apis/networking.istio.io/v1/gateways",
               "/apis/networking.istio.io/v1/serviceentries",
               "/apis/security.istio.io/v1/peerauthentications",
               "/apis/security.istio.io/v1/authorizationpolicies")
"""Cluster-wide lists of the mesh config a drill may delete and restore (backup-restore)."""


def activities(experiment: Mapping[str, Any]) -> int:
    """How many activities Chaos Toolkit announces in a whole run of ``experiment``: the
    steady-state probes (before and after), the method, the rollbacks."""
    probes = len((experiment.get("steady-state-hypothesis") or {}).get("probes") or [])
    return 2 * probes + len(experiment.get("method") or []) + len(
        experiment.get("rollbacks") or [])


@dataclass(frozen=True, slots=True)
class KillPoint:
    """Kill ``delay_s`` after the ``after``-th announced activity (0: as soon as it starts),
    or, with ``on_change``, ``delay_s`` after the drill's first change is recorded."""

    after: int
    delay_s: float
    on_change: bool = False

    def describe(self) -> str:
        if self.on_change:
            return f"{self.delay_s:.1f} s after its first recorded change"
        return f"{self.delay_s:.1f} s after activity {self.after}"


def kill_point(rng: random.Random, announced: int, *, on_change: bool) -> KillPoint:
    """A random moment of a run announcing ``announced`` activities: anywhere (from its
    start to inside its last activity), or ``on_change``, while a change is in place (up to
    ``CHANGE_SPREAD_S`` after the first one is recorded)."""
    if on_change:
        return KillPoint(0, rng.uniform(0.0, CHANGE_SPREAD_S), on_change=True)
    return KillPoint(rng.randint(0, max(0, announced - 1)), rng.uniform(0.0, KILL_JITTER_S))


@dataclass(slots=True)
class Leftovers:
    """What runs left in the clusters, one line each, by kind."""

    records: list[str] = field(default_factory=list)
    leases: list[str] = field(default_factory=list)
    labelled: list[str] = field(default_factory=list)
    marked: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def total(self) -> int:
        return sum(len(v) for v in self.by_kind().values())

    def by_kind(self) -> dict[str, list[str]]:
        return {"undo records": self.records, "run locks": self.leases,
                "run-labelled objects": self.labelled, "objects marked changed": self.marked,
                "objects differing from before": self.changed}

    def add(self, other: Leftovers) -> None:
        for mine, theirs in zip(self.by_kind().values(), other.by_kind().values(), strict=True):
            mine.extend(theirs)

    def describe(self) -> str:
        return ", ".join(f"{len(v)} {k}" for k, v in self.by_kind().items())


Snapshot = dict[str, Any]
"""``cluster path`` → what is compared (a Deployment's replicas, a config object's
semantic view)."""


def _items(api: ClusterApi, path: str, **params: str) -> list[dict[str, Any]]:
    try:
        return list(api.get(path, **params).get("items") or [])
    except NotFoundError:  # a kind the cluster does not serve
        return []


def _path(kind_path: str, obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    group, _, plural = kind_path.rpartition("/")
    namespace = meta.get("namespace")
    where = f"{group}/namespaces/{namespace}/{plural}" if namespace else kind_path
    return f"{where}/{meta.get('name')}"


def snapshot(apis: Mapping[str, ClusterApi]) -> Snapshot:
    """Every Deployment's replicas and every mesh config object, per cluster."""
    out: Snapshot = {}
    for cluster, api in apis.items():
        for obj in _items(api, DEPLOYMENTS):
            out[f"{cluster} {_path(DEPLOYMENTS, obj)}"] = (obj.get("spec") or {}).get(
                "replicas", 1)
        for kind in MESH_CONFIG:
            for obj in _items(api, kind):
                out[f"{cluster} {_path(kind, obj)}"] = semantic_view(obj)
    return out


def state_differences(before: Snapshot, after: Snapshot) -> list[str]:
    """One line per object of ``before`` missing or different in ``after``, and per object
    in ``after`` that was not there before."""
    lines = []
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            lines.append(f"{key} is gone")
        elif key not in before:
            lines.append(f"{key} is new")
        elif before[key] != after[key]:
            lines.append(f"{key} differs" + (f" (replicas {before[key]} -> {after[key]})"
                                              if isinstance(before[key], int) else ""))
    return lines


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def count_leftovers(apis: Mapping[str, ClusterApi], before: Snapshot, *,
                    deleting: bool = True) -> Leftovers:
    """Everything of any run still in the clusters, and every difference from ``before``;
    ``deleting=False`` leaves out labelled objects already being deleted (with their
    namespace)."""
    found = Leftovers()
    for cluster, api in apis.items():
        found.records += [f"{cluster} {r.name}" for r in list_records(api)]
        if exists(api, LEASE_PATH):
            found.leases.append(f"{cluster} {LEASE_PATH}")
        going = {str(n["metadata"]["name"]) for n in _items(api, "/api/v1/namespaces")
                 if _deleting(n) and not deleting}
        for kind in LABELLED_KINDS:
            for obj in _items(api, kind, labelSelector=RUN_ID_LABEL):
                if deleting or (not _deleting(obj) and (obj.get("metadata") or {}).get(
                        "namespace") not in going):
                    found.labelled.append(f"{cluster} {_path(kind, obj)}")
            for obj in _items(api, kind):
                if CHANGED_BY_ANNOTATION in ((obj.get("metadata") or {}).get("annotations")
                                             or {}):
                    found.marked.append(f"{cluster} {_path(kind, obj)}")
    found.changed = state_differences(before, snapshot(apis))
    return found


@dataclass(frozen=True, slots=True)
class Trial:
    run_id: str
    experiment: str
    fault_cluster: str
    killed: str
    found: Leftovers
    remaining: Leftovers
    undone: int
    recover_exit: int
    recover_s: float


def _drill_env(base: Mapping[str, str], target: Target, target_file: Path, fault: str,
               run_id: str) -> dict[str, str]:
    names = [c.name for c in target.clusters]
    client = names[(names.index(fault) + 1) % len(names)]
    contexts = {c.name: c.context for c in target.clusters}
    return {**base, "MESHPROOF_TARGET": str(target_file), "MESHPROOF_RUN_ID": run_id,
            "MESHPROOF_FAULT_CLUSTER": fault, "MESHPROOF_FAULT_CONTEXT": contexts[fault],
            "MESHPROOF_CLIENT_CLUSTER": client, "MESHPROOF_CLIENT_CONTEXT": contexts[client],
            "MESHPROOF_FAULT_HOLD_S": HOLD_S}


def _run_and_kill(experiment: Path, env: dict[str, str], point: KillPoint, log: Path,
                  limit_s: float, changed: Callable[[], bool]) -> str:
    """``chaos run`` of ``experiment``, its process group SIGKILLed at ``point``
    (``changed`` says whether the drill has recorded a change yet)."""
    chaos = Path(sys.executable).with_name("chaos")
    if not chaos.exists():
        raise CannotRun(f"Chaos Toolkit's `chaos` is not installed beside {sys.executable}")
    began = time.monotonic()
    announced = [0]
    with log.open("w") as out:
        proc = subprocess.Popen([str(chaos), "--no-version-check",
                                 "--log-file", str(log.with_suffix(".journal.log")), "run",
                                 "--rollback-strategy", "always",
                                 "--journal-path", str(log.with_suffix(".json")),
                                 str(experiment)],
                                cwd=log.parent, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        reader = threading.Thread(target=_copy_counting, args=(proc, out, announced),
                                  daemon=True)
        reader.start()
        while proc.poll() is None and time.monotonic() - began < limit_s:
            due = changed() if point.on_change else announced[0] >= point.after
            if due:
                time.sleep(point.delay_s)
                break
            time.sleep(DEFAULT_TIMEOUTS.poll_interval / 5)
        ended = proc.poll() is not None
        if not ended:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        reader.join(timeout=60)
    at = f"{time.monotonic() - began:.1f} s in ({point.describe()}; {announced[0]} announced)"
    return f"{at} (it had ended: exit {proc.returncode})" if ended else at


def _copy_counting(proc: subprocess.Popen[str], out: IO[str], announced: list[int]) -> None:
    """Copy the drill's output to ``out``, counting the activities it announces."""
    assert proc.stdout is not None
    for line in proc.stdout:
        out.write(line)
        announced[0] += ("] Probe: " in line) or ("] Action: " in line)


def _recover(env: dict[str, str], target_file: Path, cwd: Path) -> tuple[int, str, float]:
    began = time.monotonic()
    done = meshproof_command("recover", "--target", str(target_file), env=env,
                             timeout=DEFAULT_TIMEOUTS.rollout * 4, cwd=cwd)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - began


def _settled(apis: Mapping[str, ClusterApi], before: Snapshot) -> tuple[Leftovers, float]:
    """What remains once deletions ``recover`` asked for have finished (a namespace
    terminating), waiting at most the ``rollout`` timeout; and how long that took."""
    began = time.monotonic()

    def nothing_left() -> Leftovers:
        left = count_leftovers(apis, before)
        assert left.total() == 0, left.describe()
        return left

    try:
        return eventually(nothing_left, timeout=DEFAULT_TIMEOUTS.rollout,
                          interval=DEFAULT_TIMEOUTS.poll_interval * 4,
                          what="leftovers gone after recover"), time.monotonic() - began
    except MeshproofError:
        return count_leftovers(apis, before), time.monotonic() - began


def measure() -> Figure:
    rng = random.Random(SEED)
    print(f"seed {SEED}; {TRIALS} trials", flush=True)
    plans = {name: json.loads((ROOT / "experiments" / f"{name}.json").read_text())
             for name in EXPERIMENTS}
    with bench_lab() as lab:
        target_file = lab.paths.target
        target = load_target(str(target_file))
        apis = open_connections(target).apis
        before = snapshot(apis)
        start = count_leftovers(apis, before)
        if start.total():
            raise CannotRun(f"the fresh lab already holds leftovers: {start.describe()}")
        trials: list[Trial] = []
        work = lab.paths.root.parent
        reruns = 0
        for number in range(TRIALS):
            name = EXPERIMENTS[number % len(EXPERIMENTS)]
            fault = rng.choice([c.name for c in target.clusters])
            # Each experiment in turn; every other pass over them aims at a change. A drill
            # that ended before its moment came is run again, killed after a random activity
            # (a change can be gone within a second, or come last), and what it left is
            # counted with the next attempt's: every trial is a kill.
            for attempt in range(1, ATTEMPTS + 1):
                run_id = f"b{number:02d}{attempt}{rng.randrange(16**6):06x}"
                point = kill_point(rng, activities(plans[name]), on_change=attempt == 1 and bool(
                    number // len(EXPERIMENTS) % 2))

                def changed(run: str = run_id) -> bool:
                    return any(r.run_id == run for api in apis.values()
                               for r in list_records(api))

                killed = _run_and_kill(ROOT / "experiments" / f"{name}.json",
                                       _drill_env(lab.env, target, target_file, fault, run_id),
                                       point, work / f"{run_id}.log",
                                       DEFAULT_TIMEOUTS.rollout * 2, changed)
                if "it had ended" not in killed or attempt == ATTEMPTS:
                    break
                print(f"trial {number + 1}: {name} on {fault} ended before its kill "
                      f"({killed}); again", flush=True)
                reruns += 1
            found = count_leftovers(apis, before, deleting=False)
            code, output, took = _recover(lab.env, target_file, work)
            (work / f"{run_id}-recover.log").write_text(output)
            remaining, settle = _settled(apis, before)
            undone = sum(line.startswith("undo ") for line in output.splitlines())
            trial = Trial(run_id, name, fault, killed, found, remaining, undone, code,
                          took + settle)
            trials.append(trial)
            print(f"trial {number + 1}: {name} on {fault}, killed {killed}; found "
                  f"{found.total()} ({found.describe()}); recover exit {code} in {took:.1f} s, "
                  f"{undone} undone; remaining {remaining.total()}", flush=True)
            for line in _lines(remaining.by_kind().values()):
                print(f"  left: {line}", flush=True)
    return _figure(trials, reruns)


def _lines(groups: Iterable[list[str]]) -> list[str]:
    return [line for group in groups for line in group]


def _figure(trials: list[Trial], reruns: int) -> Figure:
    found, remaining = Leftovers(), Leftovers()
    for trial in trials:
        found.add(trial.found)
        remaining.add(trial.remaining)
    with_leftovers = sum(1 for t in trials if t.found.total())
    faulted = sum(1 for t in trials if t.found.records or t.found.marked or t.found.changed)
    ended = sum(1 for t in trials if "it had ended" in t.killed)
    clean_exits = sum(1 for t in trials if t.recover_exit == 0)
    slowest = max(t.recover_s for t in trials)
    text = (f"{len(trials) - ended} of {len(trials)} drills SIGKILLed at random moments "
            f"({reruns} runs ended before their moment and were run again; {faulted} kills "
            f"with a change in place, {with_leftovers} left something: "
            f"{found.total()} leftovers, {found.describe()}); after `meshproof recover` "
            f"{remaining.total()} remain; recover exit 0 in {clean_exits}/{len(trials)}, "
            f"{sum(t.undone for t in trials)} undo lines, slowest recover (until nothing was "
            f"left) {slowest:.1f} s")
    met = (remaining.total() == 0 and clean_exits == len(trials) and len(trials) >= 1
           and ended == 0)
    return Figure(NAME, text, "0 remaining after recover", met)


def main() -> int:
    return run_benchmark(NAME, measure)


if __name__ == "__main__":
    sys.exit(main())
