"""Real drills killed with SIGKILL: ``chaos run`` of the drill experiments, each killed (its
whole process group) at a random moment — before a change, with a fault in place, during
its rollbacks — then ``meshproof recover``; nothing of any of them may remain.

This is ``bench/drill_safety.py`` with fewer trials (``make bench`` runs 20): the same
count of leftovers in every cluster (undo records, run locks, run-labelled objects,
objects marked changed, replicas and mesh configuration differing from before the first
trial), taken after each kill and after each recover.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.safety.support import ROOT

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

TRIALS = 4
"""One kill of each drill experiment the benchmark tries."""


def test_killed_drills_leave_nothing_after_recover() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.drill_safety"], cwd=ROOT,
        env={**os.environ, "MESHPROOF_BENCH_DRILL_TRIALS": str(TRIALS)},
        capture_output=True, text=True, timeout=1800, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    figure = proc.stdout.strip().splitlines()[-1]
    assert figure.startswith("drill_safety: ") and figure.endswith(": met"), output[-4000:]
    assert f"{TRIALS} of {TRIALS} drills SIGKILLed" in figure and "0 remain" in figure, figure
