"""What the safety lab tests share: target files with a blast radius, the driver, the
API server's request log, and the cluster state a sweep must restore."""

from __future__ import annotations

import dataclasses
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from meshproof.clients.kube import NotFoundError
from meshproof.connections import open_connections
from meshproof.lab.kube.requestlog import RequestRecord, read_request_log
from meshproof.safety import semantic_view
from meshproof.safety.lock import LEASE_PATH
from meshproof.safety.records import exists, list_records
from meshproof.target import load_target
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually
from tests.support.lab import RunningLab

__all__ = ["DRIVER", "ROOT", "WRITE_VERBS", "assert_token_nowhere", "driver_command",
           "interrupt_trials", "leftovers", "recover", "request_counts", "snapshot",
           "start_holding", "target_allowing", "writes_since"]

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("drive_changes.py")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
ADMIN = "lab-admin"
"""The user the lab's kubeconfig token maps to (the suite's writes are this user's)."""


def target_allowing(lab: RunningLab, faults: tuple[str, ...], name: str) -> Path:
    """A copy of the lab's target allowing ``faults`` in every cluster (beside the kubeconfig
    it names)."""
    doc = yaml.safe_load(lab.target.read_text())
    doc["destructive"] = {"allowed": {c["name"]: list(faults) for c in doc["clusters"]}}
    path = lab.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def driver_command(target: Path, run_id: str, plan: str, *args: str) -> list[str]:
    return [sys.executable, str(DRIVER), "--target", str(target), "--run-id", run_id,
            "--plan", plan, *args]


def start_holding(command: list[str]) -> subprocess.Popen[str]:
    """Start the driver with ``--hold``; returns once it has made all its changes."""
    proc = subprocess.Popen([*command, "--hold"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "done":
            return proc
    proc.kill()
    _, err = proc.communicate(timeout=30)
    raise AssertionError(f"the driver ended before making its changes: {err}")


def request_counts(lab: RunningLab) -> dict[str, int]:
    """How many requests each cluster's API server has logged so far."""
    return {c: sum(1 for _ in read_request_log(_log(lab, c))) for c in lab.contexts}


def writes_since(lab: RunningLab, counts: dict[str, int]) -> list[RequestRecord]:
    """The suite's write requests logged after ``counts`` (from ``request_counts``)."""
    out = []
    for cluster in lab.contexts:
        records = list(read_request_log(_log(lab, cluster)))[counts.get(cluster, 0):]
        out += [r for r in records if r.user == ADMIN and r.verb in WRITE_VERBS]
    return out


def _log(lab: RunningLab, cluster: str) -> Path:
    return lab.root / "logs" / f"{cluster}-requests.log"


def recover(lab: RunningLab, target: Path, timeout: float = 400
            ) -> subprocess.CompletedProcess[str]:
    """``meshproof recover --target FILE``."""
    return subprocess.run([sys.executable, "-m", "meshproof", "recover", "--target", str(target)],
                          cwd=ROOT, env=lab.env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def snapshot(target: Path, paths: list[str]) -> dict[tuple[str, str], Any]:
    """Each cluster's objects at ``paths`` as compared (server-set fields and run marks
    left out; None for an absent object)."""
    apis = open_connections(load_target(str(target))).apis
    out: dict[tuple[str, str], Any] = {}
    for cluster, api in apis.items():
        for path in paths:
            try:
                out[(cluster, path)] = semantic_view(api.get(path))
            except NotFoundError:
                out[(cluster, path)] = None
    return out


def leftovers(target: Path) -> dict[str, list[str]]:
    """What runs left, by cluster: undo records, the lock Lease, labelled namespaces."""
    apis = open_connections(load_target(str(target))).apis
    out: dict[str, list[str]] = {}
    for cluster, api in apis.items():
        found = [f"undo record {r.name}" for r in list_records(api)]
        if exists(api, LEASE_PATH):
            found.append("run lock Lease")
        namespaces = api.get("/api/v1/namespaces", labelSelector="meshproof.io/run-id")
        found += [f"namespace {n['metadata']['name']}" for n in namespaces.get("items") or []]
        out[cluster] = found
    return out



def _kill_at_random(cmd: list[str], rng: random.Random, steps: int, log: Path) -> str:
    """Run ``cmd``; SIGKILL it after a random number of its progress lines (and a random
    fraction of a second more). Returns where it was killed."""
    stop_after = rng.randint(0, steps + 1)  # 0: after "start"; steps + 1: after "done"
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    seen = -1
    with log.open("w") as out:
        for line in proc.stdout:
            out.write(line)
            seen += line.startswith(("start", "applied ", "done"))
            if seen == stop_after:
                time.sleep(rng.uniform(0.0, 0.25))  # somewhere inside the next change
                break
        proc.send_signal(signal.SIGKILL)
        rest, _ = proc.communicate(timeout=60)
        out.write(rest or "")
    # Killed, or (killed after "done") finished its own rollback first.
    assert proc.returncode in (-signal.SIGKILL, 0), log.read_text()
    return f"after {stop_after} of {steps} progress lines (exit {proc.returncode})"


def interrupt_trials(lab: RunningLab, target: Path, plan: str, watched: list[str],
                     written: Path, *, trials: int, seed: int, extra: tuple[str, ...] = ()
                     ) -> int:
    """``trials`` runs of the driver's ``plan``, each killed at a random point and then
    recovered with `meshproof recover`; after each, the ``watched`` objects must equal their
    originals and nothing of the run may be left. Keeps each run's output, undo records and
    recover output under ``written``. Returns how many things recover undid in all."""
    original = snapshot(target, watched)
    assert all(v is not None for v in original.values()), original
    rng = random.Random(seed)
    apis = open_connections(load_target(str(target))).apis
    undone = 0
    for trial in range(trials):
        run_id = f"t{trial}{rng.randrange(16**6):06x}"
        steps = rng.randint(1, 6)
        where = _kill_at_random(
            driver_command(target, run_id, plan, "--seed", str(rng.randrange(2**31)),
                           "--steps", str(steps), *extra), rng, steps, written / f"{run_id}.log")
        about = f"trial {trial} (seed {seed}, run {run_id}, killed {where})"
        records = {c: [dataclasses.asdict(r) for r in list_records(api) if r.run_id == run_id]
                   for c, api in apis.items()}
        (written / f"{run_id}-records.json").write_text(json.dumps(records))
        done = recover(lab, target)
        (written / f"{run_id}-recover.log").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, f"{about}: {done.stdout}{done.stderr}"
        undone += sum(line.startswith("undo ") for line in done.stdout.splitlines())
        assert snapshot(target, watched) == original, f"{about}: {done.stdout}"
        assert leftovers(target) == {c: [] for c in lab.contexts}, f"{about}: {done.stdout}"
    return undone


def assert_token_nowhere(lab: RunningLab, directories: list[Path]) -> None:
    """No file under ``directories`` holds a token of the lab's kubeconfig."""
    kubeconfig = lab.kubeconfig.read_text()
    tokens = [u["user"]["token"] for u in yaml.safe_load(kubeconfig)["users"]]
    assert tokens and all(len(t) >= 16 and t in kubeconfig for t in tokens)
    files = [p for d in directories for p in d.rglob("*") if p.is_file()]
    assert files, f"nothing written under {directories}"
    holding = [str(p) for p in files if any(t in p.read_text(errors="replace") for t in tokens)]
    assert holding == [], f"the kubeconfig token is in {holding}"


def assert_nothing_left(lab: RunningLab) -> None:
    """Every run's leftovers are gone from every cluster of ``lab`` (deletions may still be
    finishing: waited for up to the ``pod_ready`` timeout)."""
    def nothing_left() -> None:
        assert leftovers(lab.target) == {c: [] for c in lab.contexts}

    eventually(nothing_left, timeout=DEFAULT_TIMEOUTS.pod_ready,
               interval=DEFAULT_TIMEOUTS.poll_interval, what="the drill's leftovers gone")
