"""Interrupted runs on the mesh lab: killed with SIGKILL at random points, then recovered.

Each trial starts the driver (``drive_changes.py --plan mesh``): a random
sequence of marked changes — east-west gateway or istiod scaled to 0, a delay
fault patched into a VirtualService, a DestinationRule deleted, a probe
namespace created — in random clusters, killed after a random number of them
(before the first, between any two, during the rollback). `meshproof recover`
must then leave every compared object equal to its original (server-set fields
aside) and nothing of the run behind. Nothing a run writes may hold the
kubeconfig's token (trial output, undo records, recover output, lab logs; the
nightly's reports). The nightly profile on the recovered lab closes the module
(``e2e``), once the availability windows no longer hold the trials' outages.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshproof.catalog import load_catalog
from meshproof.connections import open_connections
from meshproof.safety.records import UndoRecord
from meshproof.safety.recover import steady_state_checks
from meshproof.target import load_target
from tests.safety.drive_changes import GATEWAY, ISTIOD, MESH_FAULTS, ROUTE, RULE
from tests.safety.support import ROOT, assert_token_nowhere, interrupt_trials, target_allowing
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.lab]

TRIALS = 10
SEED = int(os.environ.get("MESHPROOF_SAFETY_SEED") or random.SystemRandom().randrange(2**32))
DEPLOYMENTS = [f"/apis/apps/v1/namespaces/{ns}/deployments/{name}" for ns, name in (GATEWAY,
                                                                                    ISTIOD)]
WATCHED = [*DEPLOYMENTS, ROUTE, RULE]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("interrupt"), mesh=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def allowing(mesh: RunningLab) -> Path:
    return target_allowing(mesh, MESH_FAULTS, "target-drills")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module keeps what runs wrote (their output, undo records seen)."""
    return tmp_path_factory.mktemp("written")


def test_killed_runs_leave_nothing_recover_does_not_undo(mesh: RunningLab, allowing: Path,
                                                         written: Path) -> None:
    undone = interrupt_trials(mesh, allowing, "mesh", WATCHED, written, trials=TRIALS,
                              seed=SEED)
    assert undone > 0, "no trial left anything to recover: the kill points never hit a change"
    assert_token_nowhere(mesh, [written, mesh.root / "logs"])


def test_the_mesh_objects_are_back_after_the_trials(mesh: RunningLab, allowing: Path) -> None:
    target = load_target(str(allowing))
    for cluster, api in open_connections(target).apis.items():
        touched = [UndoRecord("final", 0, "scale", path, "final check")
                   for path in DEPLOYMENTS]
        results = steady_state_checks(api, touched, target.resolved_timeouts)
        assert all(ok for _, ok in results), f"{cluster}: {results}"
        for path in (ROUTE, RULE):
            assert api.get(path)["metadata"]["name"], f"{path} missing on {cluster}"


@pytest.mark.e2e
@pytest.mark.prometheus
def test_the_recovered_lab_passes_the_nightly_profile(mesh: RunningLab, written: Path) -> None:
    # The trials' outages (istiod and the east-west gateway at 0 replicas, their old pods'
    # failed last scrapes) are honestly in CP-AVAIL's and GW-AVAIL's windows until those
    # windows have passed since the last recovery, and the scrapes have settled.
    target = load_target(str(mesh.target))
    catalog = load_catalog()
    window = max(target.effective_thresholds(catalog, gid).window_s
                 for gid in ("CP-AVAIL", "GW-AVAIL"))
    time.sleep(window + target.resolved_timeouts.scrape_settle)
    reports = written / "nightly"
    proc = subprocess.run(
        [sys.executable, "-m", "meshproof", "run", "--target", str(mesh.target),
         "--profile", "nightly", "--report-dir", str(reports)],
        cwd=ROOT, env={**mesh.env, "MESHPROOF_RUN_ID": "after-recover"}, capture_output=True,
        text=True, timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert_token_nowhere(mesh, [reports])
