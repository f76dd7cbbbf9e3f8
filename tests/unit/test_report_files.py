"""The report files of a run: all written, all parse, consistent, and free of credentials."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from meshproof.report import REPORT_FILES
from meshproof.report.certificate import bundle_digest
from meshproof.report.model import REPORT_SCHEMA, Report
from tests.support.runner import STAGING, TOKEN, RunOutput, run_synthetic


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> RunOutput:
    # The staging target has a Prometheus bearer token; one synthetic step quotes it.
    return run_synthetic("mixed", tmp_path_factory.mktemp("reports"), target=STAGING)


def load(run: RunOutput, name: str) -> Any:
    return json.loads((run.report_dir / name).read_text(encoding="utf-8"))


def test_every_report_file_is_written(mixed: RunOutput) -> None:
    assert sorted(p.name for p in mixed.report_dir.iterdir()) == sorted(REPORT_FILES)


def test_no_credential_in_any_file_or_output(mixed: RunOutput) -> None:
    assert len(TOKEN) > 10
    for path in mixed.report_dir.iterdir():
        assert TOKEN not in path.read_text(encoding="utf-8"), path.name
    assert TOKEN not in mixed.stdout + mixed.stderr
    # The step really did try to leak it, so the check above can fail.
    assert "[ evidence ] CERT-RENEW mesh: authorization=Bearer ***" in mixed.lines


def test_report_json_is_the_versioned_model(mixed: RunOutput) -> None:
    report = load(mixed, "report.json")
    assert report["schema"] == REPORT_SCHEMA
    assert Report.from_dict(report).summary.held == ("MTLS-STRICT",)
    run = report["run"]
    assert run["target"] == "staging" and run["profile"] == "nightly"
    assert [c["context"] for c in run["clusters"]] == ["aws-eks", "gcp-gke"]
    assert run["exit_code"] == 1 and run["meshproof_version"]
    assert run["started"] <= run["finished"]
    strict = next(g for g in report["guarantees"] if g["id"] == "MTLS-STRICT")
    assert strict["runbook"][0]["lines"] == [170, 170]
    assert strict["tier"] == "core" and strict["statement"]
    aws = strict["clusters"][0]
    assert aws["cluster"] == "aws-eks"
    keys = {e["key"] for e in aws["evidence"]}
    assert {"synthetic_outcome", "window", "ratio"} <= keys
    assert aws["judgements"][0]["verdict"] == "held"
    assert [e["phase"] for e in strict["drill"]["events"]] == ["steady", "steady"]
    assert [(lo["cluster"], lo["requests"], lo["percentiles_ms"]) for lo in strict["load"]] == [
        ("aws-eks", 100, {"0.95": 12.5}),
        ("gcp-gke", 100, {"0.95": 12.5}),
    ]
    handshake = next(g for g in report["guarantees"] if g["id"] == "MTLS-HANDSHAKE")
    assert handshake["clusters"][1]["judgements"] == []  # the violated cluster judged nothing


def test_threshold_overrides_and_their_reasons_are_in_the_report(mixed: RunOutput) -> None:
    report = load(mixed, "report.json")
    by_id = {g["id"]: g for g in report["guarantees"]}
    latency = by_id["XC-LATENCY"]["thresholds"]
    assert latency["values"]["max_ms"] == 50
    assert latency["overrides"][0]["loosened"] is False
    cp = by_id["CP-AVAIL"]["thresholds"]
    assert cp["window_s"] == 120
    assert cp["overrides"][0]["loosened"] is True
    assert "30-minute slot" in cp["overrides"][0]["reason"]
    html = (mixed.report_dir / "index.html").read_text(encoding="utf-8")
    assert "LOOSENED by the target" in html and "30-minute slot" in html
    certificate = load(mixed, "certificate.json")
    assert certificate["loosenedThresholds"][0]["guarantee"] == "CP-AVAIL"


def test_junit_has_a_testcase_per_guarantee_per_cluster(mixed: RunOutput) -> None:
    root = ET.parse(mixed.report_dir / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "meshproof.nightly"
    for attr in ("tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"):
        assert suite.get(attr) is not None, attr
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert int(suite.get("tests", "0")) == len(cases)
    failed = cases[("meshproof.nightly.MTLS-HANDSHAKE", "gcp-gke")]
    failure = failed.find("failure")
    assert failure is not None and "synthetic violation on gcp-gke" in failure.get("message", "")
    assert cases[("meshproof.nightly.MTLS-HANDSHAKE", "aws-eks")].find("failure") is None
    skipped = cases[("meshproof.nightly.MTLS-IDENTITY", "all clusters")].find("skipped")
    assert skipped is not None and "no check ran on this target" in skipped.get("message", "")
    assert int(suite.get("failures", "0")) == sum(
        c.find("failure") is not None for c in cases.values()
    )
    assert int(suite.get("skipped", "0")) == sum(
        c.find("skipped") is not None for c in cases.values()
    )
    assert suite.find("properties/property[@name='target']").get("value") == "staging"  # type: ignore[union-attr]


def test_cucumber_json_is_normalized(mixed: RunOutput) -> None:
    features = load(mixed, "cucumber.json")
    elements = {e["id"]: e for f in features for e in f["elements"]}
    statuses = {i: [s["result"]["status"] for s in e["steps"]] for i, e in elements.items()}
    assert statuses["test_every_cluster_holds[aws-eks-held]"] == ["passed", "passed"]
    assert statuses["test_one_cluster_violates[gcp-gke-violated]"] == ["passed", "failed"]
    # pytest-bdd alone says "passed" for a scenario that ended not measurable.
    not_measurable = elements["test_the_mesh_wide_check_cannot_be_measured"]
    assert [s["result"]["status"] for s in not_measurable["steps"]] == ["passed", "skipped"]
    assert "enable the synthetic exporter" in not_measurable["steps"][1]["result"]["error_message"]
    # A recorded judgement decided: the last step carries the failure.
    assert statuses["test_a_recorded_judgement_that_was_never_asserted"] == ["passed", "failed"]
    assert elements["test_every_cluster_holds[aws-eks-held]"]["tags"][0]["name"] == "MTLS-STRICT"


def test_certificate_splits_core_and_extended_and_digests_the_evidence(mixed: RunOutput) -> None:
    certificate = load(mixed, "certificate.json")
    assert certificate["schema"] == "meshproof.certificate/v1"
    profile = certificate["profiles"][0]
    assert profile["name"] == "nightly" and profile["result"] == "fail"
    assert "MTLS-HANDSHAKE" in profile["core"]["violatedGuarantees"]
    assert profile["extended"]["statistics"]["violated"] == 0  # all violations are core ones
    not_measured = {g["id"] for g in profile["extended"]["notMeasurableGuarantees"]}
    assert "MTLS-IDENTITY" in not_measured
    files = {
        name: (mixed.report_dir / name).read_bytes() for name in certificate["evidence"]["files"]
    }
    assert set(files) == {"report.json", "junit.xml", "cucumber.json"}
    assert certificate["evidence"] == bundle_digest(files)
    assert (
        certificate["evidence"]["files"]["report.json"]
        == hashlib.sha256(files["report.json"]).hexdigest()
    )


def test_html_is_self_contained_and_tells_each_story(mixed: RunOutput) -> None:
    html = (mixed.report_dir / "index.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "1/16 guarantees held" in html
    assert "<svg" in html and "<style>" in html
    assert 'src="http' not in html and 'href="http' not in html  # nothing fetched from elsewhere
    for gid in ("MTLS-STRICT", "MTLS-HANDSHAKE", "MTLS-IDENTITY"):
        assert f'id="{gid}"' in html
    assert "enable the synthetic exporter" in html  # the fix
    assert "synthetic_outcome" in html  # the evidence
    assert "runbook L170 (Standard Operations" in html and "runbook L178-181" in html


def test_report_dir_is_created(tmp_path: Path) -> None:
    run = run_synthetic("held", tmp_path / "deep" / "reports")
    assert run.returncode == 0
    assert (tmp_path / "deep" / "reports" / "index.html").is_file()
