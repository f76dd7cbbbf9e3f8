"""Acceptance of the report formats, on recorded runs (no lab needed).

The four formats are written; JUnit XML parses with a standard parser and has the
JUnit shape (a testcase per guarantee per cluster); Cucumber JSON parses and has
the standard fields; the HTML opens in headless Chromium without console errors,
with every image loaded, and a screenshot is taken; the certificate digests the
evidence bundle.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from meshproof.report import REPORT_FILES, write_reports
from meshproof.report.certificate import bundle_digest, check_certificate
from meshproof.report.model import Report
from meshproof.report.redact import Redactor
from meshproof.sli.verdict import Verdict
from tests.report.chromium import chromium_binary, visit
from tests.report.recorded import drill_report, recorded_cucumber, recorded_report

RUNS: dict[str, Callable[[], tuple[Report, list[dict[str, Any]]]]] = {
    "nightly-slow-wan": lambda: (recorded_report(), recorded_cucumber()),
    "drill": lambda: (drill_report(), []),
}

# The fields the Cucumber JSON schema requires (cucumber/cucumber-json-schema,
# schemas/canonical.json: Feature, Element, Step, Result, Status); extra fields are allowed.
CUCUMBER = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["uri", "keyword", "name", "elements"],
        "properties": {
            "uri": {"type": "string"},
            "elements": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["line", "type", "keyword", "name", "description", "steps"],
                    "properties": {
                        "type": {"enum": ["background", "scenario"]},
                        "line": {"type": "number"},
                        "tags": {"type": "array", "items": {"required": ["name"]}},
                        "steps": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["keyword", "line", "name", "result"],
                                "properties": {
                                    "result": {
                                        "type": "object",
                                        "required": ["status"],
                                        "properties": {
                                            "status": {
                                                "enum": ["passed", "failed", "skipped",
                                                         "undefined", "pending", "unknown"]
                                            },
                                            "duration": {"type": "number"},
                                        },
                                    }
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def written(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path]:
    report, cucumber = RUNS[request.param]()
    directory = tmp_path_factory.mktemp(request.param)
    write_reports(report, directory, cucumber=cucumber, scenarios=[], log="recorded run\n",
                  redactor=Redactor(()))
    return report, directory


def test_all_formats_are_written(written: tuple[Report, Path]) -> None:
    _, directory = written
    assert sorted(p.name for p in directory.iterdir()) == sorted(REPORT_FILES)
    assert Report.from_dict(json.loads((directory / "report.json").read_text())) == written[0]


def test_junit_parses_and_has_a_testcase_per_guarantee_per_cluster(
    written: tuple[Report, Path],
) -> None:
    report, directory = written
    root = ET.parse(directory / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    for attribute in ("name", "tests", "failures", "errors", "skipped", "time", "timestamp"):
        assert suite.get(attribute) is not None, attribute
    cases = suite.findall("testcase")
    assert int(suite.get("tests", "-1")) == len(cases) == int(root.get("tests", "-2"))
    for case in cases:
        assert case.get("classname", "").startswith(f"meshproof.{report.run.profile}.")
        float(case.get("time", "x"))
        assert {child.tag for child in case} <= {"failure", "skipped", "system-out"}
    by_guarantee: dict[str, dict[str, ET.Element]] = {}
    for case in cases:
        guarantee = case.get("classname", "").rsplit(".", 1)[1]
        by_guarantee.setdefault(guarantee, {})[case.get("name", "")] = case
    assert set(by_guarantee) == {g.id for g in report.guarantees}
    clusters = {c.name for c in report.run.clusters}
    for g in report.guarantees:
        judged = {str(j.get("cluster")) for c in g.clusters for j in c.judgements} & clusters
        # Every cluster a check judged has its own testcase, with the verdict it got there.
        assert judged <= set(by_guarantee[g.id]), g.id
        failed = {name for name, case in by_guarantee[g.id].items()
                  if case.find("failure") is not None}
        assert bool(failed) == (g.verdict is Verdict.VIOLATED), g.id
    assert int(suite.get("failures", "-1")) == sum(c.find("failure") is not None for c in cases)
    assert int(suite.get("skipped", "-1")) == sum(c.find("skipped") is not None for c in cases)


def test_cucumber_json_parses_with_the_standard_fields(written: tuple[Report, Path]) -> None:
    report, directory = written
    features = json.loads((directory / "cucumber.json").read_text())
    jsonschema.validate(features, CUCUMBER)
    tagged = {t["name"].lstrip("@") for f in features for e in f["elements"]
              for t in e.get("tags", [])}
    if features:  # the drill was recorded as a results file only
        assert {g.id for g in report.guarantees} <= tagged


def test_certificate_digests_the_evidence_bundle(written: tuple[Report, Path]) -> None:
    report, directory = written
    certificate = json.loads((directory / "certificate.json").read_text())
    profile = certificate["profiles"][0]
    assert profile["name"] == report.run.profile and profile["result"] == report.summary.result
    core = {g.id for g in report.guarantees if g.tier == "core"}
    named = set(profile["core"]["heldGuarantees"]) | set(profile["core"]["violatedGuarantees"])
    named |= {g["id"] for g in profile["core"]["notMeasurableGuarantees"]}
    assert named == core
    files = {name: (directory / name).read_bytes() for name in certificate["evidence"]["files"]}
    assert certificate["evidence"] == bundle_digest(files)
    assert certificate["evidence"]["files"]["junit.xml"] == hashlib.sha256(
        (directory / "junit.xml").read_bytes()).hexdigest()
    assert f"{len(profile['core']['heldGuarantees'])}/{len(core)} held" in profile["summary"]
    assert check_certificate(directory) == []


def test_a_changed_report_no_longer_matches_its_certificate(
    written: tuple[Report, Path], tmp_path: Path
) -> None:
    _, directory = written
    for path in directory.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    report = json.loads((tmp_path / "report.json").read_text())
    report["summary"]["result"] = "pass"
    (tmp_path / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    problems = check_certificate(tmp_path)
    assert problems and problems[0].startswith("report.json: sha256 ")
    assert problems[-1].startswith("bundle digest ")


BROWSER = chromium_binary()


@pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_html_opens_in_chromium_without_errors_and_with_its_images(
    written: tuple[Report, Path],
) -> None:
    report, directory = written
    assert BROWSER is not None
    screenshot = directory / "index.png"
    seen = visit(directory / "index.html", screenshot, binary=BROWSER)
    assert seen.console_errors == []
    assert seen.title.startswith(f"meshproof {report.run.profile} on {report.run.target}")
    assert seen.images, "the report has no plot"
    for image in seen.images:
        assert image["complete"] and image["naturalWidth"] > 0, image["alt"]
    # Self-contained: the page itself and its data: URIs, nothing fetched.
    assert [u for u in seen.requests if not u.startswith("data:")] == [
        (directory / "index.html").resolve().as_uri()
    ]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_does_report_errors_and_broken_images(tmp_path: Path) -> None:
    """The negative control: a page with a script error and a broken image is caught."""
    assert BROWSER is not None
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><title>broken</title><link rel="icon" href="data:,">'
        '</head><body><img alt="missing" src="missing.png">'
        "<script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    seen = visit(page, tmp_path / "broken.png", binary=BROWSER)
    assert any("boom" in e for e in seen.console_errors)
    assert any("undefinedFunction" in e for e in seen.console_errors)
    assert any("missing.png" in e for e in seen.console_errors)
    assert seen.images == [{"alt": "missing", "complete": True, "naturalWidth": 0}]
