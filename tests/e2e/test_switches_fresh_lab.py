"""The break switches whose fault leaves traces in Prometheus' longer windows after the
heal: each runs on a lab of its own and must make exactly the guarantees it should fail."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshproof.lab.switches import SWITCH_BREAKS
from tests.e2e.nightly import FRESH_LAB, check_switch
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.lab, pytest.mark.prometheus]


@pytest.fixture
def mesh_lab(tmp_path: Path) -> Iterator[RunningLab]:
    """A fresh lab per test, for the switches in ``FRESH_LAB``: their fault leaves traces in
    Prometheus for the guarantees' windows (up to 10 minutes) after the heal."""
    with running_lab(tmp_path, mesh=True) as lab:
        yield lab


@pytest.mark.parametrize("switch", FRESH_LAB)
def test_each_break_switch_violates_exactly_its_guarantees(mesh_lab: RunningLab, switch: str,
                                                           e2e_reports: Path) -> None:
    check_switch(mesh_lab, switch, e2e_reports)


def test_no_guarantee_lacks_a_negative_control() -> None:
    from meshproof.catalog import load_catalog

    covered = set().union(*SWITCH_BREAKS.values())
    nightly_ids = {g.id for g in load_catalog().for_profile("nightly")}
    uncovered = nightly_ids - covered - NEGATIVE_CONTROL_PENDING
    assert not uncovered, f"nightly guarantees with no break switch: {sorted(uncovered)}"
    assert not (NEGATIVE_CONTROL_PENDING & covered), "remove covered ids from the pending set"


NEGATIVE_CONTROL_PENDING: set[str] = set()
"""Nightly guarantees whose break switch does not exist yet; this set may only shrink."""


def test_compare_says_no_go_for_the_slow_wan_run(e2e_reports: Path) -> None:
    """`meshproof compare` of the healthy run with the slow-wan run: no-go, naming XC-LATENCY."""
    runs = [e2e_reports / "healthy", e2e_reports / "slow-wan"]
    missing = [run.name for run in runs if not (run / "report.json").exists()]
    if missing:
        pytest.skip(f"runs not made in this session: {', '.join(missing)} (select them too)")
    proc = subprocess.run([sys.executable, "-m", "meshproof", "compare", *map(str, runs)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    verdict_line = [line for line in proc.stdout.splitlines() if "no-go" in line]
    assert verdict_line and "XC-LATENCY" in verdict_line[-1], proc.stdout
