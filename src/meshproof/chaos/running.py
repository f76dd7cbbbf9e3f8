"""Running a drill experiment through Chaos Toolkit's Python API on a target.

``run_drill`` does for one experiment and one assignment of cluster roles what
``chaos run`` does, inside the safety rules (``meshproof.safety.destructive_run``):
the faults are checked against the blast radius before anything is written, the
run lock is taken and dead runs' leftovers are swept in the faulted clusters,
and every change is undone however the experiment ends. The experiment reads
its target, clusters and contexts from the same environment variables a user
sets for plain ``chaos run``; the outcome carries the guarantee's judgement, the
drill's timeline and the load it ran under.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaoslib.experiment import run_experiment
from chaoslib.loader import load_experiment
from kubernetes.config import kube_config

from meshproof.chaos import state
from meshproof.chaos.experiments import DrillExperiment, experiments_for, role_assignments
from meshproof.connections import open_connections
from meshproof.errors import ConfigError
from meshproof.safety import destructive_run, require_all_allowed
from meshproof.sli.verdict import Judgement, Verdict
from meshproof.target import Target

__all__ = ["DrillOutcome", "drill_environment", "kubeconfig_environment",
           "require_drills_allowed", "run_drill"]

HOLD_ENV = "MESHPROOF_FAULT_HOLD_S"


@dataclass(slots=True)
class DrillOutcome:
    """What one run of an experiment showed."""

    experiment: str
    roles: dict[str, str]
    cluster: str
    """The cluster the experiment's first fault is applied in."""
    judgements: dict[str, Judgement]
    """By guarantee id; a guarantee the experiment did not judge is not measurable."""
    status: str
    """The journal's status (completed, failed, aborted, interrupted) and ``deviated``."""
    timeline: list[dict[str, Any]] = field(default_factory=list)
    loads: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    """What the safety layer printed (sweeps, undo lines)."""


def drill_environment(target: Target, roles: Mapping[str, str], run_id: str) -> dict[str, str]:
    """The variables an experiment reads: target, run id, each role's cluster and context,
    and ``KUBECONFIG`` (the kubeconfig of the target's clusters, for chaosk8s)."""
    assert target.source is not None, "a loaded target always has a source file"
    env = {state.TARGET_ENV: str(target.source), state.RUN_ID_ENV: run_id}
    for role, cluster in roles.items():
        key = role.upper()
        env[f"MESHPROOF_{key}"] = cluster
        env[f"MESHPROOF_{key.removesuffix('_CLUSTER')}_CONTEXT"] = target.cluster(cluster).context
    env.update(kubeconfig_environment(target))
    return env


def kubeconfig_environment(target: Target) -> dict[str, str]:
    """``KUBECONFIG`` for a process that runs drills, when the target's clusters share one
    kubeconfig file: chaosk8s reads it (and the kubernetes client fixes its default
    location when first imported), so it must be set before the process starts."""
    kubeconfigs = {c.kubeconfig for c in target.clusters if c.kubeconfig is not None}
    return {"KUBECONFIG": str(kubeconfigs.pop())} if len(kubeconfigs) == 1 else {}


def _check_kubeconfig(env: Mapping[str, str]) -> None:
    """chaosk8s activities would reach whatever kubeconfig the process started with."""
    wanted = env.get("KUBECONFIG")
    started = Path(kube_config.KUBE_CONFIG_DEFAULT_LOCATION).expanduser()
    if wanted and started.resolve() != Path(wanted).resolve():
        raise ConfigError(
            f"this process reads kubeconfig {started}, the target's clusters are in {wanted}: "
            f"start it with KUBECONFIG={wanted} (chaosk8s uses the kubeconfig the kubernetes "
            "client found when it was imported)")


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def require_drills_allowed(target: Target, guarantee_ids: list[str],
                           directory: Path) -> list[DrillExperiment]:
    """Refuse (``DestructiveRefused``) unless the blast radius allows every fault of every
    drill the guarantees need, in every cluster it would run in; nothing is written."""
    experiments = experiments_for(guarantee_ids, directory)
    wanted: dict[str, list[str]] = {}
    for experiment in experiments:
        for roles in role_assignments(target.cluster_names):
            for cluster, faults in experiment.faults_by_cluster(roles).items():
                wanted.setdefault(cluster, []).extend(
                    f for f in faults if f not in wanted.get(cluster, []))
    require_all_allowed(target, wanted)
    return experiments


def _failure(journal: Mapping[str, Any]) -> str:
    """The first thing that went wrong in ``journal``, in one line."""
    for when, hypothesis in (journal.get("steady_states") or {}).items():
        for probe in (hypothesis or {}).get("probes") or []:
            if probe.get("tolerance_met") is False:
                why = probe.get("exception") or [f"output {probe.get('output')!r}"]
                return (f"steady state {when}: {probe['activity']['name']} not met: "
                        f"{str(why[-1]).strip().splitlines()[-1][:300]}")
    for run in journal.get("run") or []:
        if run.get("status") == "failed":
            exc = run.get("exception") or []
            last = str(exc[-1]).strip() if exc else "failed"
            return f"{run['activity']['name']}: {last.splitlines()[-1][:300]}"
    return f"the experiment ended {journal.get('status')}"


def run_drill(target: Target, experiment: DrillExperiment, roles: Mapping[str, str],
              run_id: str, *, hold_s: float | None = None) -> DrillOutcome:
    """Run ``experiment`` with ``roles`` on ``target`` under ``run_id``; its outcome.

    Raises ``DestructiveRefused`` (nothing written) when the target does not allow its
    faults, ``RunLocked`` when another run holds a cluster.
    """
    env = drill_environment(target, roles, run_id)
    if hold_s is not None:
        env[HOLD_ENV] = f"{hold_s:g}"
    _check_kubeconfig(env)
    log = io.StringIO()
    connections = open_connections(target, timeouts=target.resolved_timeouts)
    with destructive_run(target, connections.apis, run_id,
                         experiment.faults_by_cluster(roles), out=log) as changes:
        drill = state.begin(target, run_id, changes, connections)
        try:
            with _environment(env):
                loaded = load_experiment(str(experiment.path))
                journal = run_experiment(
                    loaded, settings={"runtime": {"rollbacks": {"strategy": "always"}}})
        finally:
            drill.close()
            state.finish()
    judgements: dict[str, Judgement] = {}
    for gid in experiment.guarantees:
        judgements[gid] = drill.judgements.get(gid) or Judgement(
            Verdict.NOT_MEASURABLE,
            f"{gid}: the drill did not get to judge it ({_failure(journal)})",
            {"journal_status": journal.get("status")})
    loads = [dict(v) for k, v in drill.measurements.items() if k.startswith("traffic:")]
    status = f"{journal.get('status')}{', deviated' if journal.get('deviated') else ''}"
    first_role = next(iter(experiment.faults), "fault_cluster")
    return DrillOutcome(experiment=experiment.path.name, roles=dict(roles),
                        cluster=roles[first_role],
                        judgements=judgements, status=status, timeline=list(drill.timeline),
                        loads=loads, log=log.getvalue())
