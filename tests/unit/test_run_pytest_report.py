"""A plain pytest run over the features with ``--meshproof-report`` gives ``meshproof run``'s
verdicts: both build the report from the same scenario results with the same code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.runner import LAB_LIKE, RUNNER_DATA, TOKEN, run_synthetic

ROOT = RUNNER_DATA.parents[2]


def plain_pytest(features: str, *args: str) -> subprocess.CompletedProcess[str]:
    features_dir = RUNNER_DATA / features
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(features_dir),
         "-o", f"bdd_features_base_dir={features_dir}", "-p", "no:cacheprovider", "-q",
         "-p", "meshproof.run.pytest_plugin", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def _report(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    return data


def _verdicts(report: dict[str, Any]) -> dict[str, tuple[str, dict[str, str]]]:
    return {g["id"]: (g["verdict"], {c["cluster"]: c["verdict"] for c in g["clusters"]})
            for g in report["guarantees"]}


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], str]:
    base = tmp_path_factory.mktemp("parity")
    run = run_synthetic("mixed", base / "run")
    assert run.returncode == 1, run.stdout + run.stderr
    plain = plain_pytest("mixed", "--target", str(LAB_LIKE), "-m", "nightly",
                         "--meshproof-report", str(base / "pytest"))
    return _report(base / "run"), _report(base / "pytest"), plain.stdout + plain.stderr


def test_plain_pytest_gives_the_runners_verdict_for_every_guarantee(
        both: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    by_runner, by_pytest, output = both
    assert _verdicts(by_pytest) == _verdicts(by_runner), output[-3000:]
    assert {g["verdict"] for g in by_runner["guarantees"]} == {
        "held", "violated", "not_measurable"}
    assert [g["reason"] for g in by_pytest["guarantees"]] == [
        g["reason"] for g in by_runner["guarantees"]]
    assert by_pytest["run"]["exit_code"] == by_runner["run"]["exit_code"] == 1
    assert by_pytest["summary"] == by_runner["summary"]


def test_plain_pytest_names_its_report_and_keeps_credentials_out(
        both: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    _, by_pytest, output = both
    line = next(x for x in output.splitlines() if x.startswith("meshproof: "))
    assert line.startswith("meshproof: 1/16 guarantees held (profile nightly, exit code 1)")
    assert "report.json" in line
    assert TOKEN not in json.dumps(by_pytest)


@pytest.mark.parametrize(("args", "message"), [
    (["--target", str(LAB_LIKE)], "--meshproof-report needs the profile"),
    (["--target", str(LAB_LIKE), "-m", "nightly or drill"], "--meshproof-report needs the profile"),
    (["-m", "nightly"], "--meshproof-report needs --target"),
    (["-m", "nightly", "--target", "no-such-target.yaml"], "--target no-such-target.yaml"),
])
def test_a_report_request_it_cannot_serve_is_one_line(tmp_path: Path, args: list[str],
                                                      message: str) -> None:
    result = plain_pytest("mixed", *args, "--meshproof-report", str(tmp_path / "r"))
    assert result.returncode == 4, result.stdout + result.stderr
    errors = [x for x in result.stderr.splitlines() if x.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()
