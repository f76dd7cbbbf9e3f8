"""`meshproof run` over synthetic features: verdict per guarantee, exit codes, terminal output.

The features under tests/data/runner choose each scenario's outcome; they
exercise the runner, not a mesh.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from meshproof.catalog import load_catalog
from tests.support.runner import LAB_LIKE, RUNNER_DATA, STAGING, RunOutput, run_synthetic


def verdicts(run: RunOutput) -> dict[str, str]:
    report = json.loads((run.report_dir / "report.json").read_text(encoding="utf-8"))
    return {g["id"]: g["verdict"] for g in report["guarantees"]}


def guarantee(run: RunOutput, gid: str) -> dict[str, Any]:
    report = json.loads((run.report_dir / "report.json").read_text(encoding="utf-8"))
    return next(g for g in report["guarantees"] if g["id"] == gid)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> RunOutput:
    return run_synthetic("mixed", tmp_path_factory.mktemp("mixed"), target=STAGING)


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> RunOutput:
    return run_synthetic("held", tmp_path_factory.mktemp("held"))


def test_a_violation_exits_1(mixed: RunOutput) -> None:
    assert mixed.returncode == 1, mixed.stderr
    assert mixed.stderr == ""


def test_outcomes_map_to_verdicts_and_aggregate_over_clusters(mixed: RunOutput) -> None:
    v = verdicts(mixed)
    assert v["MTLS-STRICT"] == "held"  # held in both clusters
    assert v["MTLS-HANDSHAKE"] == "violated"  # held in one, violated in the other
    assert v["XC-LATENCY"] == "not_measurable"  # held in one, not measurable in the other
    assert v["DISCOVERY"] == "violated"  # GuaranteeViolated from a judgement
    assert v["PROXY-HEALTH"] == "violated"  # a recorded judgement nobody asserted on
    assert v["INJECTION"] == "not_measurable"  # NotMeasurable
    assert v["ROUTING"] == "not_measurable"  # an inconclusive judgement is never held
    assert v["INGRESS"] == "not_measurable"  # a plain pytest skip
    handshake = {c["cluster"]: c["verdict"] for c in guarantee(mixed, "MTLS-HANDSHAKE")["clusters"]}
    assert handshake == {"aws-eks": "held", "gcp-gke": "violated"}


def test_not_measurable_carries_the_reason_and_the_fix(mixed: RunOutput) -> None:
    latency = guarantee(mixed, "XC-LATENCY")
    gcp = next(c for c in latency["clusters"] if c["cluster"] == "gcp-gke")
    assert gcp["reason"] == "synthetic: the series is absent"
    assert gcp["fix"] == "enable the synthetic exporter"
    assert "[ NOT MEASURABLE ] XC-LATENCY gcp-gke" in mixed.stdout


def test_steps_get_the_guarantee_its_thresholds_and_the_example_cluster(mixed: RunOutput) -> None:
    latency = guarantee(mixed, "XC-LATENCY")
    aws = next(c for c in latency["clusters"] if c["cluster"] == "aws-eks")
    recorded = {e["key"]: e["value"] for e in aws["evidence"]}
    assert recorded["guarantee"] == "XC-LATENCY"
    assert recorded["thresholds"]["max_ms"] == 50  # staging tightens the catalog's 100
    assert recorded["window_s"] == latency["thresholds"]["window_s"]
    assert recorded["context"] == "aws-eks"


def test_a_guarantee_without_a_scenario_is_not_measurable_never_held(mixed: RunOutput) -> None:
    identity = guarantee(mixed, "MTLS-IDENTITY")
    assert identity["verdict"] == "not_measurable"
    assert identity["reason"] == "no check ran on this target"
    assert identity["clusters"] == []


def test_every_guarantee_of_the_profile_gets_exactly_one_verdict(mixed: RunOutput) -> None:
    nightly = [g.id for g in load_catalog().for_profile("nightly")]
    assert list(verdicts(mixed)) == nightly


def test_the_profile_selects_by_catalog_so_a_drill_guarantee_does_not_run(mixed: RunOutput) -> None:
    # CP-RECOVERY is drill-only; its synthetic scenario would crash if it ran.
    assert "CP-RECOVERY" not in verdicts(mixed)
    assert "CP-RECOVERY" not in mixed.stdout
    assert "crash" not in mixed.stdout


def test_progress_and_summary_lines(mixed: RunOutput) -> None:
    lines = mixed.lines
    assert lines[-1] == "1/16 guarantees held, 4 violated, 11 not measurable"
    assert re.fullmatch(r"\d+/\d+ guarantees held, \d+ violated, \d+ not measurable", lines[-1])
    assert "[ run ] 12 scenarios selected" in lines
    assert "[ phase ] MTLS-HANDSHAKE gcp-gke: Then the synthetic outcome is violated" in lines
    assert "[ HELD ] MTLS-STRICT aws-eks: every cluster holds" in mixed.stdout
    assert (
        "[ VIOLATED ] MTLS-HANDSHAKE gcp-gke: one cluster violates - synthetic violation on gcp-gke"
        in lines
    )
    assert "[ evidence ] MTLS-STRICT aws-eks: ratio=1.0" in lines
    assert "[ summary ] 4 violated: MTLS-HANDSHAKE, DISCOVERY, CERT-RENEW, PROXY-HEALTH" in lines
    named = next(line for line in lines if line.startswith("[ summary ] 11 NOT MEASURABLE"))
    assert "MTLS-IDENTITY" in named and "XC-LATENCY" in named
    # Progress comes in order: a scenario starts, its steps run, then its verdict.
    start = lines.index("[ run ] 4/12 MTLS-HANDSHAKE gcp-gke: one cluster violates")
    assert lines[start + 1].startswith("[ phase ] MTLS-HANDSHAKE gcp-gke: Given")
    assert lines[start + 3].startswith("[ VIOLATED ]")


def test_all_that_ran_held_exits_0_and_is_partial(held: RunOutput) -> None:
    assert held.returncode == 0, held.stderr
    v = verdicts(held)
    assert v["MTLS-STRICT"] == "held" and v["DISCOVERY"] == "held"
    assert held.lines[-1] == "2/16 guarantees held, 0 violated, 14 not measurable"
    # A scenario without steps passes in pytest, but it measured nothing.
    assert guarantee(held, "INGRESS")["reason"] == (
        "mesh: the scenario ran no steps, so nothing was measured"
    )
    certificate = json.loads((held.report_dir / "certificate.json").read_text(encoding="utf-8"))
    assert certificate["profiles"][0]["result"] == "partial"


def test_require_all_turns_not_measurable_into_exit_1(tmp_path: Path) -> None:
    run = run_synthetic("held", tmp_path, require_all=True)
    assert run.returncode == 1, run.stderr
    assert "[ summary ] --require-all is on: each of them fails the run" in run.lines


def test_a_crashing_check_is_not_measurable_and_exits_2(tmp_path: Path) -> None:
    run = run_synthetic("crash", tmp_path)
    assert run.returncode == 2, run.stdout
    routing = guarantee(run, "ROUTING")
    assert routing["verdict"] == "not_measurable"
    assert (
        "the check could not run: RuntimeError: synthetic crash inside the check"
        in routing["reason"]
    )
    assert verdicts(run)["MTLS-STRICT"] == "held"
    assert "[ summary ] run problem: ROUTING [mesh]: RuntimeError: synthetic crash" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_a_violation_outranks_a_crash_for_the_exit_code(tmp_path: Path) -> None:
    run = run_synthetic("both", tmp_path)
    assert run.returncode == 1, run.stdout
    assert verdicts(run)["MTLS-STRICT"] == "violated"
    assert verdicts(run)["ROUTING"] == "not_measurable"
    # The crash is still reported as a problem of the run.
    assert "[ summary ] run problem: ROUTING [mesh]: RuntimeError" in run.stdout


def test_a_run_that_measures_nothing_exits_2_with_one_line_and_reports(tmp_path: Path) -> None:
    run = run_synthetic("none", tmp_path)
    assert run.returncode == 2
    assert len(run.stderr.splitlines()) == 1
    assert "no runnable guarantees yet" in run.stderr and "nothing was measured" in run.stderr
    assert (tmp_path / "index.html").is_file()
    assert run.lines[-1] == "0/16 guarantees held, 0 violated, 16 not measurable"


def test_a_misspelt_guarantee_tag_stops_the_run(tmp_path: Path) -> None:
    run = run_synthetic("badtag", tmp_path)
    assert run.returncode == 2
    assert "'MTLS-STRICTT' not found in `markers`" in run.stderr
    assert "meshproof catalog" in run.stderr


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(text.encode() in a for a in args):
            found.append(cmdline.parent.name)
    return found


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_an_interrupt_stops_pytest_and_exits_2(tmp_path: Path) -> None:
    features = RUNNER_DATA / "slow"
    env = {**os.environ, "MESHPROOF_FEATURES_DIR": str(features)}
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "meshproof"),
            "run",
            "--target",
            str(LAB_LIKE),
            "--profile",
            "nightly",
            "--report-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # As from a terminal: a shell's background job (nohup ... &) hands its children
        # SIGINT ignored, and an ignored signal stays ignored across exec.
        preexec_fn=_default_sigint,
    )
    watchdog = threading.Timer(90, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("[ phase ] MTLS-STRICT mesh: Then the synthetic outcome is slow"):
                break
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2
    assert stderr.strip() == "meshproof: error: interrupted"
    assert _processes_mentioning(str(features)) == []  # pytest did not outlive the runner
    # What finished before the stop is still reported.
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["run"]["exit_code"] == 2
    assert report["run"]["errors"][0].startswith(
        "interrupted: the run was stopped after 0 scenarios"
    )
    assert stdout.splitlines()[-1] == "0/16 guarantees held, 0 violated, 16 not measurable"
    strict = next(g for g in report["guarantees"] if g["id"] == "MTLS-STRICT")
    assert strict["reason"] == "mesh: the run stopped before this check finished"
