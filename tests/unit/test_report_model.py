"""Building the report model from scenario results; redaction; Cucumber normalization."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshproof.catalog import load_catalog
from meshproof.errors import ConfigError
from meshproof.report.cucumber import normalize_cucumber
from meshproof.report.model import NO_CHECK_RAN, Report, RunFacts, build_report, overall_result
from meshproof.report.redact import MASK, Redactor, secrets_of
from meshproof.run.results import ScenarioResult
from meshproof.run.verdicts import Outcome
from meshproof.sli.verdict import Verdict
from meshproof.target import load_target
from tests.support.runner import LAB_LIKE, STAGING, TOKEN

FACTS = RunFacts(
    "r1", "nightly", "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", "features", False
)


def scenario(gid: str, cluster: str | None, outcome: Outcome, message: str = "") -> ScenarioResult:
    return ScenarioResult(
        nodeid=f"f.feature::{gid}-{cluster}",
        ids=(gid,),
        name=f"{gid} check",
        cluster=cluster,
        outcome=outcome,
        message=message,
    )


def test_verdicts_add_up_per_cluster_then_per_guarantee() -> None:
    catalog = load_catalog()
    target = load_target(LAB_LIKE)
    report = build_report(
        target,
        catalog,
        catalog.for_profile("nightly"),
        [
            scenario("MTLS-STRICT", "gcp-gke", Outcome.PASSED),
            scenario("MTLS-STRICT", "aws-eks", Outcome.PASSED),
            scenario("MTLS-STRICT", "aws-eks", Outcome.VIOLATED, "plaintext accepted"),
            scenario("XC-LATENCY", None, Outcome.ERROR, "TargetUnreachable: prometheus"),
            scenario("DISCOVERY", "aws-eks", Outcome.PASSED),
        ],
        FACTS,
    )
    strict = report.guarantee("MTLS-STRICT")
    assert strict.verdict is Verdict.VIOLATED
    assert [c.cluster for c in strict.clusters] == ["aws-eks", "gcp-gke"]  # the target's order
    assert strict.reason == "aws-eks: plaintext accepted"
    latency = report.guarantee("XC-LATENCY")
    assert latency.verdict is Verdict.NOT_MEASURABLE
    assert latency.clusters[0].cluster == "mesh" and latency.clusters[0].could_not_run
    assert "the check could not run: TargetUnreachable" in latency.reason
    assert report.could_not_run == ("XC-LATENCY",)
    assert report.guarantee("DISCOVERY").verdict is Verdict.HELD
    identity = report.guarantee("MTLS-IDENTITY")
    assert identity.verdict is Verdict.NOT_MEASURABLE and identity.reason == NO_CHECK_RAN
    assert report.summary.held == ("DISCOVERY",)
    assert report.summary.result == "fail"
    assert any("XC-LATENCY [mesh]: TargetUnreachable" in e for e in report.run.errors)


def test_overall_result() -> None:
    assert overall_result([Verdict.HELD]) == "pass"
    assert overall_result([Verdict.HELD, Verdict.NOT_MEASURABLE]) == "partial"
    assert overall_result([Verdict.NOT_MEASURABLE, Verdict.VIOLATED]) == "fail"
    assert overall_result([]) == "partial"


def test_secrets_of_a_target_include_kubeconfig_credentials(tmp_path: Path) -> None:
    assert TOKEN in secrets_of(load_target(STAGING))
    (tmp_path / "sa.token").write_text("file-token-abcdef\n")
    (tmp_path / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users:\n- {name: a, user: {token: inline-token-123456}}\n"
        "- {name: b, user: {tokenFile: sa.token}}\n"
        "contexts: [{name: aws-eks, context: {cluster: c, user: a}}]\n"
    )
    (tmp_path / "t.yaml").write_text(
        "name: t\nclusters:\n- {name: aws-eks, context: aws-eks, kubeconfig: kubeconfig, "
        "network: n1, prometheus: null}\nnamespaces: [sample]\n"
    )
    found = secrets_of(load_target(tmp_path / "t.yaml"))
    assert set(found) == {"inline-token-123456", "file-token-abcdef"}


def test_redactor_masks_plain_and_escaped_forms() -> None:
    redactor = Redactor(['s3cr<t&"x', "short"])
    assert redactor.text('a s3cr<t&"x b') == f"a {MASK} b"
    assert redactor.text("a s3cr&lt;t&amp;&quot;x b") == f"a {MASK} b"
    assert redactor.text('"s3cr<t&\\"x"') == f'"{MASK}"'
    assert redactor.text("short stays") == "short stays"  # too short to be treated as a secret
    assert redactor.data({"k": ['s3cr<t&"x']}) == {"k": [MASK]}


def test_cucumber_statuses_follow_the_step_that_ended_the_scenario() -> None:
    steps = [{"line": n, "result": {"status": "passed"}} for n in (5, 6, 7)]
    raw = [{"uri": "x/x.feature", "elements": [{"id": "test_a", "steps": steps}]}]
    result = ScenarioResult(
        nodeid="n",
        ids=("INJECTION",),
        name="a",
        cluster=None,
        outcome=Outcome.NOT_MEASURABLE,
        message="no pods",
        fix="label it",
        feature_uri="x/x.feature",
        item="test_a",
        interrupted_line=6,
    )
    out = normalize_cucumber(raw, [result])
    got = [s["result"]["status"] for s in out[0]["elements"][0]["steps"]]
    assert got == ["passed", "skipped", "skipped"]
    assert out[0]["elements"][0]["steps"][1]["result"]["error_message"] == "no pods (fix: label it)"
    assert [s["result"]["status"] for s in steps] == ["passed"] * 3  # the input is left alone


def test_report_json_reads_back_into_the_same_model() -> None:
    catalog = load_catalog()
    target = load_target(STAGING)
    report = build_report(
        target,
        catalog,
        catalog.for_profile("nightly"),
        [scenario("XC-LATENCY", "aws-eks", Outcome.VIOLATED, "p95 130 ms")],
        FACTS,
    )
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report
    assert again.guarantee("XC-LATENCY").clusters[0].verdict is Verdict.VIOLATED
    with pytest.raises(ConfigError, match="meshproof.report/v0"):
        Report.from_dict({**report.to_dict(), "schema": "meshproof.report/v0"})
