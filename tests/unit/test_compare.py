"""`meshproof compare` on synthetic reports and on two recorded lab runs.

tests/data/compare/ holds the report.json of two nightly runs on the lab
(`meshproof run --target <lab> --profile nightly`), the second under the
`slow-wan` break switch. The first was recorded on a loaded machine: its
XC-LATENCY share under 100 ms was already 94% (violated); under slow-wan it
is 47%, and the SLI test names XC-LATENCY although its verdict did not change.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from meshproof.cli import main
from meshproof.compare import compare_reports, load_report, render_comparison
from meshproof.errors import ConfigError
from meshproof.report.model import Report
from meshproof.sli.verdict import Verdict

DATA = Path(__file__).parents[1] / "data" / "compare"
HEALTHY = DATA / "healthy.report.json"
SLOW_WAN = DATA / "slow-wan.report.json"


def with_verdict(report: Report, guarantee: str, verdict: Verdict) -> Report:
    guarantees = tuple(dataclasses.replace(g, verdict=verdict) if g.id == guarantee else g
                       for g in report.guarantees)
    return dataclasses.replace(report, guarantees=guarantees)


def with_shares(report: Report, guarantee: str, good: float, total: float) -> Report:
    """The guarantee's success-ratio judgements all say ``good`` of ``total``."""
    def judgement(j: dict[str, Any]) -> dict[str, Any]:
        evidence = dict(j.get("evidence") or {})
        if "good" in evidence:
            evidence.update(good=good, total=total)
        return {**j, "evidence": evidence}

    guarantees = tuple(
        dataclasses.replace(g, clusters=tuple(
            dataclasses.replace(c, judgements=tuple(judgement(j) for j in c.judgements))
            for c in g.clusters)) if g.id == guarantee else g
        for g in report.guarantees)
    return dataclasses.replace(report, guarantees=guarantees)


@pytest.fixture(scope="module")
def healthy() -> Report:
    return load_report(HEALTHY)


def test_the_slow_wan_run_is_no_go_naming_xc_latency(healthy: Report) -> None:
    comparison = compare_reports(healthy, load_report(SLOW_WAN))
    assert not comparison.go
    assert "XC-LATENCY" in comparison.regressed
    latency = [s for s in comparison.slis if s.guarantee == "XC-LATENCY"]
    assert {s.cluster for s in latency} == {"aws-eks", "gcp-gke"}
    assert all(s.regressed and s.kind == "share <= 100 ms" for s in latency)
    # The counts behind the test are the recorded ones, not percentages.
    assert all(s.test.baseline_total > 1000 and s.test.current_total > 1000 for s in latency)
    text = render_comparison(comparison)
    assert text.rstrip().splitlines()[-1].startswith("no-go: regressed")
    assert "XC-LATENCY" in text.rstrip().splitlines()[-1]


def test_a_run_compared_with_itself_is_go(healthy: Report) -> None:
    comparison = compare_reports(healthy, healthy)
    assert comparison.go
    assert comparison.regressed == ()
    assert all(g.change == "same" for g in comparison.guarantees)
    assert comparison.slis and not any(s.regressed for s in comparison.slis)
    assert render_comparison(comparison).rstrip().endswith("to current")


def test_held_to_violated_regresses_and_violated_to_held_improves(healthy: Report) -> None:
    base = with_verdict(healthy, "ROUTING", Verdict.HELD)
    worse = with_verdict(base, "ROUTING", Verdict.VIOLATED)
    assert compare_reports(base, worse).regressed == ("ROUTING",)
    better = compare_reports(worse, base)
    assert "ROUTING" not in better.regressed
    assert {g.id: g.change for g in better.guarantees}["ROUTING"] == "improved"


def test_held_to_not_measurable_is_lost_and_no_go(healthy: Report) -> None:
    base = with_verdict(healthy, "INGRESS", Verdict.HELD)
    lost = compare_reports(base, with_verdict(base, "INGRESS", Verdict.NOT_MEASURABLE))
    assert lost.regressed == ("INGRESS",)
    assert {g.id: g.change for g in lost.guarantees}["INGRESS"] == "lost"


def test_a_significant_sli_drop_is_no_go_while_the_verdict_still_holds(healthy: Report) -> None:
    base = with_shares(healthy, "MTLS-STRICT", 10_000, 10_000)
    current = with_shares(healthy, "MTLS-STRICT", 9_900, 10_000)
    comparison = compare_reports(base, current)
    assert comparison.regressed == ("MTLS-STRICT",)
    assert "SLI WORSE" in render_comparison(comparison)


def test_a_drop_within_noise_is_go(healthy: Report) -> None:
    base = with_shares(healthy, "MTLS-STRICT", 199, 200)
    current = with_shares(healthy, "MTLS-STRICT", 99, 100)
    assert compare_reports(base, current).go


def test_guarantees_only_one_run_checked_are_listed_not_judged(healthy: Report) -> None:
    fewer = dataclasses.replace(healthy, guarantees=healthy.guarantees[1:])
    comparison = compare_reports(healthy, fewer)
    first = healthy.guarantees[0].id
    assert {g.id: g.change for g in comparison.guarantees}[first] == "only in baseline"
    assert comparison.go


def test_cli_exit_codes_go_no_go_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(HEALTHY), str(HEALTHY)]) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("go:")
    assert main(["compare", str(HEALTHY), str(SLOW_WAN), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["decision"] == "no-go"
    assert "XC-LATENCY" in document["regressed"]


def test_cli_reads_report_directories(tmp_path: Path) -> None:
    for name, source in (("before", HEALTHY), ("after", SLOW_WAN)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_bytes(source.read_bytes())
    assert main(["compare", str(tmp_path / "before"), str(tmp_path / "after")]) == 1


@pytest.mark.parametrize("content", [None, "not json", '{"schema": "other/v1"}',
                                     '{"schema": "meshproof.report/v1"}'])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, content: str | None,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "report.json"
    if content is not None:
        bad.write_text(content)
    assert main(["compare", str(bad), str(HEALTHY)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("meshproof: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_load_report_refuses_a_directory_without_a_report(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no report\.json"):
        load_report(tmp_path)


def test_alpha_outside_0_1_is_refused(healthy: Report) -> None:
    with pytest.raises(ConfigError, match="alpha"):
        compare_reports(healthy, healthy, alpha=1.5)
