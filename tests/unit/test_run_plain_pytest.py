"""Plain pytest over features: skips without a target, profile markers from the catalog."""

from __future__ import annotations

import subprocess
import sys

from tests.support.runner import LAB_LIKE, RUNNER_DATA

ROOT = RUNNER_DATA.parents[2]


def pytest_over(features: str, *args: str) -> subprocess.CompletedProcess[str]:
    features_dir = RUNNER_DATA / features
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(features_dir),
            "-o",
            f"bdd_features_base_dir={features_dir}",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_without_a_target_every_scenario_is_skipped_with_the_reason() -> None:
    result = pytest_over("mixed")
    assert result.returncode == 0, result.stdout
    assert "13 skipped" in result.stdout
    assert "error" not in result.stdout.lower().split("short test summary")[0]
    assert "no --target given" in result.stdout


def test_profile_markers_come_from_the_catalog() -> None:
    drill = pytest_over("mixed", "-m", "drill", "--co", "--target", str(LAB_LIKE))
    assert "test_a_drill_only_guarantee_is_not_run_by_the_nightly_profile" in drill.stdout
    assert "1/13 tests collected (12 deselected)" in drill.stdout
    nightly = pytest_over("mixed", "-m", "nightly", "--co", "--target", str(LAB_LIKE))
    assert "12/13 tests collected (1 deselected)" in nightly.stdout


def test_feature_files_outside_the_features_dir_are_not_collected() -> None:
    # A plain `pytest tests/` must not pick the synthetic features up.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(RUNNER_DATA), "--co", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert ".feature::" not in result.stdout
    assert result.returncode == 5, result.stdout  # nothing collected


def test_destructive_scenarios_run_after_the_others() -> None:
    """In a profile with both (preupgrade), no non-destructive guarantee is judged after a
    drill left its faults in the windows: the drills are collected last."""
    def collected(expression: str) -> list[str]:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "features", "--co", "-q", "-m", expression,
             "--target", str(LAB_LIKE), "-p", "no:cacheprovider"],
            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
        assert result.returncode == 0, result.stdout + result.stderr
        return [line for line in result.stdout.splitlines() if "::" in line]

    order = collected("preupgrade")
    drills = collected("preupgrade and destructive")
    assert drills and len(drills) < len(order)
    assert order[-len(drills):] == drills, "\n".join(order)
