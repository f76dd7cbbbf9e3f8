"""The suite against the lab: the nightly profile holds on a healthy lab, and the break
switches whose traces do not outlive their heal, run one after another on the same lab
before it, each make exactly the guarantees it should fail (negative controls). The other
switches are in test_switches_fresh_lab.py, run after this module has stopped its lab."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.e2e.nightly import (
    NIGHTLY_SWITCHES,
    SHARED_LAB,
    allowed_for,
    check_switch,
    nightly,
    plain_pytest_nightly,
    verdicts,
)
from tests.report.chromium import chromium_binary, visit
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.lab, pytest.mark.prometheus]


@pytest.fixture(scope="module")
def shared_mesh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """One lab for the ``SHARED_LAB`` switches, run in that order, and then for the healthy
    run, which so checks that the last heal left the mesh whole (see ``SHARED_LAB``)."""
    with running_lab(tmp_path_factory.mktemp("shared-mesh"), mesh=True) as lab:
        yield lab


def test_the_shared_order_exposes_every_heal() -> None:
    assert set(SHARED_LAB) <= set(NIGHTLY_SWITCHES) and len(set(SHARED_LAB)) == len(SHARED_LAB)
    for before, after in itertools.pairwise(SHARED_LAB):
        assert not allowed_for(before) & allowed_for(after), (before, after)


@pytest.mark.parametrize("switch", SHARED_LAB)
def test_each_healable_switch_violates_exactly_its_guarantees(
        shared_mesh_lab: RunningLab, switch: str, e2e_reports: Path) -> None:
    check_switch(shared_mesh_lab, switch, e2e_reports)


def test_the_healthy_lab_holds_every_nightly_guarantee(shared_mesh_lab: RunningLab,
                                                       e2e_reports: Path) -> None:
    """On the shared lab after the last heal (or on a new one when run alone)."""
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
