"""Running `meshproof run` over the synthetic features in tests/data/runner (runner tests).

The synthetic features check nothing in a mesh: each scenario's outcome is
chosen by its example, so the runner's verdict mapping, aggregation, exit codes
and reports can be asserted exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.targets import TARGETS_DIR

__all__ = [
    "LAB_LIKE",
    "RUNNER_DATA",
    "STAGING",
    "TOKEN",
    "RunOutput",
    "run_synthetic",
]

RUNNER_DATA = Path(__file__).resolve().parents[1] / "data" / "runner"
STAGING = TARGETS_DIR / "good" / "staging.yaml"
LAB_LIKE = TARGETS_DIR / "good" / "lab-like.yaml"
TOKEN = (TARGETS_DIR / "files" / "prometheus.token").read_text(encoding="utf-8").strip()
_MESHPROOF = Path(sys.executable).parent / "meshproof"


@dataclass(frozen=True)
class RunOutput:
    """One finished `meshproof run`: exit code, output and the report directory."""

    returncode: int
    stdout: str
    stderr: str
    report_dir: Path

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


def run_synthetic(
    features: str | Path,
    report_dir: Path,
    *,
    target: Path = LAB_LIKE,
    profile: str = "nightly",
    require_all: bool = False,
) -> RunOutput:
    """``meshproof run`` over ``tests/data/runner/<features>`` (or a path), bounded to 120 s."""
    features_dir = features if isinstance(features, Path) else RUNNER_DATA / features
    env = {**os.environ, "MESHPROOF_FEATURES_DIR": str(features_dir)}
    env.pop("MESHPROOF_REQUIRE_ALL", None)
    if require_all:
        env["MESHPROOF_REQUIRE_ALL"] = "1"
    result = subprocess.run(
        [
            str(_MESHPROOF),
            "run",
            "--target",
            str(target),
            "--profile",
            profile,
            "--report-dir",
            str(report_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    return RunOutput(result.returncode, result.stdout, result.stderr, report_dir)
