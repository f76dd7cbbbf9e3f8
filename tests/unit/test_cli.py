"""The `meshproof` command as users run it: a subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.targets import GOOD_TARGETS, TARGETS_DIR, BadTarget, bad_targets

MESHPROOF = Path(sys.executable).parent / "meshproof"
BAD = bad_targets()
TOKEN = (TARGETS_DIR / "files" / "prometheus.token").read_text().strip()
STAGING = TARGETS_DIR / "good" / "staging.yaml"


def meshproof(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MESHPROOF), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("meshproof: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def bad_runs() -> dict[Path, subprocess.CompletedProcess[str]]:
    # One process per file, run side by side to keep the corpus quick.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(
            lambda b: meshproof("run", "--target", b.path, "--profile", "nightly"), BAD
        )
        return dict(zip((b.path for b in BAD), results, strict=True))


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.path.stem)
def test_malformed_target_exits_2_with_one_line(
    bad: BadTarget, bad_runs: dict[Path, subprocess.CompletedProcess[str]]
) -> None:
    result = bad_runs[bad.path]
    line = assert_one_line_error(result)
    assert bad.expect in line, f"{bad.why}: {line}"
    assert str(bad.path.resolve()) in line
    assert result.stdout == ""
    assert TOKEN not in line and "s3cr3t-inline-token" not in line


def test_help_describes_commands_and_exit_codes() -> None:
    result = meshproof("--help")
    assert result.returncode == 0
    for text in ("run", "catalog", "lab", "recover", "exit codes:", "0  every guarantee held",
                 "1  at least one guarantee was violated", "2  the run could not be done"):
        assert text in result.stdout
    run_help = meshproof("run", "--help")
    assert run_help.returncode == 0
    assert "--target" in run_help.stdout and "nightly" in run_help.stdout
    assert "--dry-run" in run_help.stdout and "exit codes:" in run_help.stdout


def test_version() -> None:
    result = meshproof("--version")
    assert result.returncode == 0 and result.stdout.startswith("meshproof ")


def test_catalog_json_lists_guarantees_with_runbook_references() -> None:
    result = meshproof("catalog", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "meshproof.catalog/v1"
    guarantees = document["guarantees"]
    assert len(guarantees) >= 15
    for g in guarantees:
        assert g["id"] and g["statement"] and g["sli"]["sources"] and g["thresholds"]
        assert g["window_s"] > 0
        assert g["runbook"] and all(r["quote"] and r["lines"] for r in g["runbook"])
    assert {a["severity"] for a in document["alerts"]} == {"P0", "P1", "P2"}


def test_catalog_text_and_profile_filter() -> None:
    result = meshproof("catalog")
    assert result.returncode == 0
    assert "XC-LATENCY" in result.stdout and "runbook L24" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("23 guarantees")
    drill = json.loads(meshproof("catalog", "--json", "--profile", "drill").stdout)
    assert drill["guarantees"] and all("drill" in g["profiles"] for g in drill["guarantees"])


def test_catalog_into_a_closed_pipe_is_quiet() -> None:
    result = subprocess.run(
        f"'{MESHPROOF}' catalog --json | head -c 10", shell=True, capture_output=True,
        text=True, timeout=60, check=False,
    )
    assert "Traceback" not in result.stderr and "error" not in result.stderr


@pytest.mark.parametrize("path", GOOD_TARGETS, ids=lambda p: p.stem)
def test_dry_run_validates_and_measures_nothing(path: Path) -> None:
    result = meshproof("run", "--target", path, "--profile", "nightly", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("dry-run    target and catalog are valid")
    assert TOKEN not in result.stdout


def test_dry_run_shows_overrides_and_blast_radius() -> None:
    nightly = meshproof("run", "--target", STAGING, "--profile", "nightly", "--dry-run").stdout
    assert "override   CP-AVAIL window_s 600 -> 120 LOOSENED reason=" in nightly
    assert "override   XC-LATENCY max_ms 100 -> 50 tightened" in nightly
    drill = meshproof("run", "--target", STAGING, "--profile", "drill", "--dry-run").stdout
    assert "blast      aws-eks: istiod-down, eastwest-gateway-down" in drill
    assert "blast      gcp-gke: none" in drill
    assert ("drill      eastwest-gateway-loss.json [EW-FAILOVER] fault=aws-eks client=gcp-gke "
            "applies aws-eks: eastwest-gateway-loss: REFUSED (aws-eks/eastwest-gateway-loss "
            "not allowed)") in drill


def test_run_does_not_pretend_to_pass(tmp_path: Path) -> None:
    line = assert_one_line_error(meshproof("run", "--target", STAGING, "--profile", "nightly",
                                           "--report-dir", str(tmp_path / "reports")))
    assert "unreachable" in line and "aws-eks" in line


def test_run_against_a_lab_that_is_not_up(tmp_path: Path) -> None:
    line = assert_one_line_error(
        meshproof("run", "--target", "lab", "--profile", "nightly", cwd=tmp_path,
                  env={"MESHPROOF_LAB_DIR": ""})
    )
    assert "meshproof lab up" in line


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--target", "x.yaml", "--profile", "weekly"], "invalid choice: 'weekly'"),
        (["run", "--profile", "nightly"], "--target"),
        ([], "COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["--bogus", "catalog"], "unrecognized arguments: --bogus"),
        (["run", "--target", "/nonexistent/t.yaml", "--profile", "drill"], "no such target file"),
        (["run", "--target", str(TARGETS_DIR), "--profile", "drill"], "is a directory"),
        (["recover", "--target", str(TARGETS_DIR / "bad" / "empty.yaml")], "the file is empty"),
        (["run", "--target", str(STAGING), "--profile", "nightly", "--report-dir", str(STAGING)],
         "is a file"),
    ],
)
def test_usage_and_file_errors_are_one_line(args: list[str], fragment: str) -> None:
    assert fragment in assert_one_line_error(meshproof(*args))


def test_recover_says_plainly_it_did_nothing() -> None:
    line = assert_one_line_error(meshproof("recover", "--target", STAGING))
    assert "nothing" in line and "staging" in line


def test_debug_shows_the_traceback() -> None:
    result = meshproof("--debug", "run", "--target", "/nonexistent/t.yaml", "--profile", "nightly")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("meshproof: error: ")


def test_python_dash_m_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meshproof", "catalog", "--json"], capture_output=True,
        text=True, timeout=60, check=False,
    )
    assert result.returncode == 0 and json.loads(result.stdout)["guarantees"]


def test_lab_commands_reach_the_lab_cli(tmp_path: Path) -> None:
    pytest.importorskip("meshproof.lab.cli")
    result = meshproof("lab", "--help")
    assert result.returncode == 0 and "usage: meshproof lab" in result.stdout
    status = meshproof("lab", "status", env={"MESHPROOF_LAB_DIR": str(tmp_path / "no-lab")})
    assert status.returncode == 2 and "Traceback" not in status.stderr
