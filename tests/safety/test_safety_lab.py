"""Safety against a bare lab: refusal before any write, dry runs, the run lock, rollback on
SIGTERM and `meshproof recover` (write requests counted from the API servers' request log)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshproof.connections import open_connections
from meshproof.errors import MeshproofError
from meshproof.safety import Changes, RunLocked, run_lock, sweep
from meshproof.safety.lock import read_holder
from meshproof.safety.records import UndoRecord, list_records, write_record
from meshproof.target import load_target
from tests.safety.drive_changes import BARE_FAULTS
from tests.safety.support import (
    ROOT,
    assert_token_nowhere,
    driver_command,
    interrupt_trials,
    leftovers,
    recover,
    request_counts,
    snapshot,
    start_holding,
    target_allowing,
    writes_since,
)
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl]

TRIALS = 10
SEED = int(os.environ.get("MESHPROOF_SAFETY_SEED") or random.SystemRandom().randrange(2**32))

NS = "safety"
APP = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app, namespace: {NS}, labels: {{app: app}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: app}}}}
  template:
    metadata: {{labels: {{app: app}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {{name: app, image: busybox, command: [sleep, "3600"]}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {NS}, annotations: {{owner: team}}}}
data: {{mode: normal}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: spare, namespace: {NS}, labels: {{keep: "yes"}}}}
data: {{a: "1"}}
"""
WATCHED = [f"/apis/apps/v1/namespaces/{NS}/deployments/app",
           f"/api/v1/namespaces/{NS}/configmaps/settings",
           f"/api/v1/namespaces/{NS}/configmaps/spare"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("safety")) as lab:
        for context in lab.contexts:
            lab.apply(APP, context=context)
        yield lab


@pytest.fixture(scope="module")
def allowing(lab: RunningLab) -> Path:
    return target_allowing(lab, BARE_FAULTS, "target-destructive")


def drive(target: Path, run_id: str, *args: str, timeout: float = 120
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(driver_command(target, run_id, "bare", "--namespace", NS, *args),
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def test_a_refused_fault_is_exit_2_and_zero_write_requests(lab: RunningLab,
                                                           allowing: Path) -> None:
    before = request_counts(lab)
    refused = drive(lab.target, "refused1", "--steps", "8")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused on cluster" in lines[0] and "nothing was changed" in (
        lines[0]), refused.stderr
    assert writes_since(lab, before) == []
    # The same plan on a target that allows it does write: the log would have seen it.
    allowed = drive(allowing, "allowed1", "--steps", "8")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert len(writes_since(lab, before)) >= 8


def test_a_drill_on_a_target_that_allows_nothing_is_refused_before_any_write(
        lab: RunningLab, tmp_path: Path) -> None:
    before = request_counts(lab)
    proc = subprocess.run(
        [sys.executable, "-m", "meshproof", "run", "--target", str(lab.target), "--profile",
         "drill", "--report-dir", str(tmp_path / "reports")],
        cwd=ROOT, env=lab.env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and "Traceback" not in proc.stderr, (
        proc.stderr)
    assert writes_since(lab, before) == []


def test_dry_run_prints_the_changes_and_writes_nothing(lab: RunningLab, allowing: Path) -> None:
    before = request_counts(lab)
    dry = drive(allowing, "dry1", "--steps", "8", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    planned = [line for line in dry.stdout.splitlines() if ": would " in line]
    assert any("would scale deployment safety/app 2 → 0" in line for line in planned), dry.stdout
    assert any("would delete configmaps safety/spare" in line for line in planned), dry.stdout
    assert len(planned) >= 8 + len(lab.contexts), dry.stdout  # the changes and the locks
    assert writes_since(lab, before) == []


def test_sigterm_mid_run_rolls_everything_back(lab: RunningLab, allowing: Path) -> None:
    original = snapshot(allowing, WATCHED)
    proc = start_holding(driver_command(allowing, "term1", "bare", "--namespace", NS,
                                        "--steps", "8"))
    assert snapshot(allowing, WATCHED) != original  # the changes were really made
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "rollbacks ran" in out and out.count("undo ") >= 8, out
    assert snapshot(allowing, WATCHED) == original
    assert leftovers(allowing) == {c: [] for c in lab.contexts}


def test_runs_killed_at_random_points_are_recovered_completely(
        lab: RunningLab, allowing: Path, tmp_path: Path) -> None:
    undone = interrupt_trials(lab, allowing, "bare", WATCHED, tmp_path, trials=TRIALS,
                              seed=SEED, extra=("--namespace", NS))
    assert undone > 0, "no trial left anything to recover: the kill points never hit a change"
    assert_token_nowhere(lab, [tmp_path, lab.root / "logs"])


def test_a_second_live_run_is_refused_and_a_dead_ones_lock_is_taken_over(
        lab: RunningLab, allowing: Path) -> None:
    target = load_target(str(allowing))
    api = open_connections(target).api(lab.contexts[0])
    holder = start_holding(driver_command(allowing, "holder1", "bare", "--namespace", NS,
                                          "--steps", "8"))
    try:
        with pytest.raises(RunLocked, match="locked by run holder1"), run_lock(
                api, "second", target.resolved_timeouts):
            pass
        second = drive(allowing, "second", "--steps", "1")
        assert second.returncode == 2 and "locked by run holder1" in second.stderr, (
            second.stdout + second.stderr)
        busy = recover(lab, allowing)
        assert busy.returncode == 2 and "locked by run holder1" in busy.stdout, busy.stdout
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    with run_lock(api, "third", target.resolved_timeouts) as how:
        assert how.startswith("took over the stale run lock of run holder1"), how
        _, now = read_holder(api)
        assert now is not None and now.run_id == "third"
        with run_lock(api, "third", target.resolved_timeouts) as nested:
            assert nested == "held by this run already"
        _, still = read_holder(api)
        assert still is not None and still.run_id == "third"  # the nested exit kept it
    assert read_holder(api) == (None, None)
    cleaned = recover(lab, allowing)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    assert leftovers(allowing) == {c: [] for c in lab.contexts}


def test_recover_undoes_a_killed_run_and_rechecks_the_rollout(lab: RunningLab,
                                                              allowing: Path,
                                                              tmp_path: Path) -> None:
    """A killed run's changes are named at the start of the next run (which only reads), and
    `meshproof recover` undoes them."""
    original = snapshot(allowing, WATCHED)
    run_id = f"k{uuid.uuid4().hex[:6]}"
    proc = start_holding(driver_command(allowing, run_id, "bare", "--namespace", NS,
                                        "--steps", "8"))
    proc.kill()
    proc.communicate(timeout=30)
    assert any(leftovers(allowing).values())
    first = start_of_a_run(lab, allowing, tmp_path)
    assert f"[ leftovers ] {lab.contexts[0]}: scaled deployment safety/app 2 → 0, made by run " \
        f"{run_id}, was never undone" in first, first
    assert f"`meshproof recover --target {allowing}` undoes them" in first, first
    assert snapshot(allowing, WATCHED) != original, "reading the leftovers changed something"
    done = recover(lab, allowing)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "undo " in out and "scaled deployment safety/app 2 → 0" in out, out
    assert "deployments safety/app is back and rolled out (2/2 ready)" in out, out
    assert out.rstrip().splitlines()[-1].startswith("recover: "), out
    assert snapshot(allowing, WATCHED) == original
    assert leftovers(allowing) == {c: [] for c in lab.contexts}
    again = recover(lab, allowing)
    assert again.returncode == 0 and "nothing to undo" in again.stdout, again.stdout
    assert "[ leftovers ]" not in start_of_a_run(lab, allowing, tmp_path)


def start_of_a_run(lab: RunningLab, target: Path, tmp_path: Path) -> str:
    """What ``meshproof run`` says before its first scenario: a profile over an empty features
    directory measures nothing (exit 2), so only the start of a run is exercised."""
    empty = tmp_path / "no-features"
    empty.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "meshproof", "run", "--target", str(target), "--profile",
         "nightly", "--report-dir", str(tmp_path / "reports")],
        cwd=ROOT, env={**lab.env, "MESHPROOF_FEATURES_DIR": str(empty)}, capture_output=True,
        text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_recover_with_a_bad_target_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "meshproof", "recover", "--target",
                           str(tmp_path / "missing.yaml")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_refused_write_keeps_no_record_and_never_deletes_anothers_object(
        lab: RunningLab, allowing: Path) -> None:
    cluster = lab.contexts[0]
    api = open_connections(load_target(str(allowing))).api(cluster)
    settings = f"/api/v1/namespaces/{NS}/configmaps/settings"
    changes = Changes(api, cluster, "clash1")
    with pytest.raises(MeshproofError, match="409"):
        changes.create({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "settings", "namespace": NS}})
    assert list_records(api) == [] and changes.undo() == []
    # A run killed between recording a create and making it left this record behind.
    write_record(api, UndoRecord("killed1", 1, "create", settings,
                                 "created configmaps safety/settings"))
    lines = sweep(api, cluster)
    assert lines == [f"{cluster}: configmaps safety/settings was not created by run killed1; "
                     "left alone"], lines
    assert api.get(settings)["data"] == {"mode": "normal"}
    assert list_records(api) == []
