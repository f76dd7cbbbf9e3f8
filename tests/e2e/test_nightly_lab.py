"""The suite against the lab: every break switch, run one after another on one lab, makes
exactly the guarantees it should fail (negative controls), and then the nightly profile holds
on that lab, healed (by `meshproof run` and by plain pytest)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from meshproof.lab.switches import SWITCH_BREAKS
from tests.e2e.nightly import (
    LAB_ORDER,
    NIGHTLY_SWITCHES,
    allowed_for,
    check_switch,
    nightly,
    plain_pytest_nightly,
    proxy_shapes,
    verdicts,
)
from tests.report.chromium import chromium_binary, visit
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.lab, pytest.mark.prometheus]


@pytest.fixture(scope="module")
def shared_mesh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """One lab for every switch, run in ``LAB_ORDER``, and then for the healthy run, which so
    checks that the last heal left the mesh whole (see ``LAB_ORDER``)."""
    with running_lab(tmp_path_factory.mktemp("shared-mesh"), mesh=True) as lab:
        yield lab


def test_the_order_exposes_every_heal() -> None:
    assert sorted(LAB_ORDER) == sorted(NIGHTLY_SWITCHES), "every nightly switch, once"
    for before, after in itertools.pairwise(LAB_ORDER):
        assert not allowed_for(before) & allowed_for(after), (before, after)


def test_no_guarantee_lacks_a_negative_control() -> None:
    from meshproof.catalog import load_catalog

    covered = set().union(*SWITCH_BREAKS.values())
    nightly_ids = {g.id for g in load_catalog().for_profile("nightly")}
    uncovered = nightly_ids - covered - NEGATIVE_CONTROL_PENDING
    assert not uncovered, f"nightly guarantees with no break switch: {sorted(uncovered)}"
    assert not (NEGATIVE_CONTROL_PENDING & covered), "remove covered ids from the pending set"


NEGATIVE_CONTROL_PENDING: set[str] = set()
"""Nightly guarantees whose break switch does not exist yet; this set may only shrink."""


@pytest.mark.parametrize("switch", LAB_ORDER)
def test_each_break_switch_violates_exactly_its_guarantees(
        shared_mesh_lab: RunningLab, switch: str, e2e_reports: Path) -> None:
    check_switch(shared_mesh_lab, switch, e2e_reports)


def test_the_healthy_lab_holds_every_nightly_guarantee(shared_mesh_lab: RunningLab,
                                                       e2e_reports: Path) -> None:
    """On the shared lab after the last heal (or on a new one when run alone), whose Istio
    injects native sidecars (the default, current release)."""
    assert proxy_shapes(shared_mesh_lab) == {"native"}
    code, report, output = nightly(shared_mesh_lab, e2e_reports / "healthy")
    not_held = {k: v for k, v in verdicts(report).items() if v != "held"}
    assert code == 0 and not not_held, f"exit {code}, not held: {not_held}\n{output[-4000:]}"
    assert output.rstrip().splitlines()[-1].startswith(f"{len(verdicts(report))}/")
    # The same features through plain pytest, on the same lab, give the same verdicts.
    plain, plain_output = plain_pytest_nightly(shared_mesh_lab, e2e_reports / "healthy-pytest")
    assert verdicts(plain) == verdicts(report), (
        f"plain pytest: {verdicts(plain)}\nmeshproof run: {verdicts(report)}\n"
        f"{plain_output[-4000:]}")


def test_the_healthy_runs_reports_parse_and_open_in_chromium(e2e_reports: Path) -> None:
    """The nightly run on the lab writes all four formats: JUnit XML and Cucumber JSON parse,
    and the HTML report opens in headless Chromium without console errors, images loaded."""
    reports = e2e_reports / "healthy"
    if not (reports / "report.json").exists():
        pytest.skip("the healthy run was not made in this session (select it too)")
    suite = ElementTree.parse(reports / "junit.xml").getroot()
    assert list(suite.iter("testcase")), "junit.xml has no testcase"
    features = json.loads((reports / "cucumber.json").read_text())
    assert features and all({"uri", "name", "elements"} <= set(f) for f in features)
    assert json.loads((reports / "certificate.json").read_text())
    browser = chromium_binary()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    seen = visit(reports / "index.html", reports / "index.png", binary=browser)
    assert seen.console_errors == [], seen.console_errors
    assert seen.images and all(i["complete"] and i["naturalWidth"] > 0 for i in seen.images)


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
