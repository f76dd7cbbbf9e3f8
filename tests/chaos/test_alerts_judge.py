"""The ALERTS judgement from what the drills measured (pure logic, the catalog's alerts)."""

from __future__ import annotations

from typing import Any

import pytest

from meshproof.catalog import load_catalog
from meshproof.chaos.alerts import judge_alerts_fired, measurements_of
from meshproof.sli.verdict import Verdict

ALERTS = load_catalog().alerts
BY_NAME = {a.name: a for a in ALERTS}
LIMIT = 300.0


def fired(name: str, cluster: str = "east", seconds: float | None = 12.0, *,
          before: bool = False) -> dict[str, Any]:
    return {"alert": name, "cluster": cluster, "expr": BY_NAME[name].expr,
            "fired_s": seconds, "waited_s": 120.0 if seconds is None else seconds,
            "firing_before": before}


def judge(alerts: Any, measured: list[dict[str, Any]], ratio: float = 1.0) -> Any:
    return judge_alerts_fired(alerts, measured, min_fired_ratio=ratio, max_fire_s=LIMIT)


def test_held_only_when_every_alert_judged_fired_in_every_cluster() -> None:
    measured = [fired(a.name, c) for a in ALERTS for c in ("east", "west")]
    judgement = judge(ALERTS, measured)
    assert judgement.verdict is Verdict.HELD, judgement.reason
    assert judgement.evidence["fired"] == judgement.evidence["measurements"] == 2 * len(ALERTS)
    rows = {r["alert"]: r for r in judgement.evidence["alerts"]}
    assert set(rows) == set(BY_NAME)
    latency = rows["CrossClusterLatencyHigh"]
    assert latency["runbook_expr"] and latency["correction"] and latency["expr"]
    assert latency["result"].startswith("fired on east, west")


def test_an_alert_that_did_not_fire_is_a_violation_naming_it_and_its_expression() -> None:
    measured = [fired(a.name) for a in ALERTS if a.name != "IstiodDown"]
    wrong = 'up{job="istiod"} == 0'
    measured.append({**fired("IstiodDown", "west", None), "expr": wrong})
    judgement = judge(ALERTS, measured)
    assert judgement.verdict is Verdict.VIOLATED
    assert "IstiodDown on west did not fire within the 120 s waited" in judgement.reason
    assert wrong in judgement.reason
    assert "EastWestGatewayDown" not in judgement.reason


def test_firing_later_than_the_window_is_a_violation() -> None:
    judgement = judge([BY_NAME["IstiodDown"]], [fired("IstiodDown", seconds=LIMIT + 1)])
    assert judgement.verdict is Verdict.VIOLATED
    assert "fired only after 301.0 s (limit 300 s)" in judgement.reason


def test_an_alert_without_a_fault_on_this_target_is_not_measurable_never_held() -> None:
    measured = [fired(a.name) for a in ALERTS
                if a.name not in ("SidecarInjectionFailing", "EnvoyMemoryHigh")]
    judgement = judge(ALERTS, measured)
    assert judgement.verdict is Verdict.NOT_MEASURABLE
    assert "SidecarInjectionFailing (no fault for it was applied on this target)" in (
        judgement.reason)
    assert "EnvoyMemoryHigh" in judgement.reason and "IstiodDown" not in judgement.reason


def test_a_violation_outranks_an_unmeasured_alert() -> None:
    judgement = judge(ALERTS, [fired("IstiodDown", seconds=None)])
    assert judgement.verdict is Verdict.VIOLATED and "IstiodDown" in judgement.reason


def test_an_alert_already_firing_before_its_fault_proves_nothing() -> None:
    judgement = judge([BY_NAME["CertificateExpiringSoon"]],
                      [fired("CertificateExpiringSoon", before=True)])
    assert judgement.verdict is Verdict.NOT_MEASURABLE
    assert "already firing when its fault started" in judgement.reason


def test_nothing_measured_is_not_measurable() -> None:
    assert judge(ALERTS, []).verdict is Verdict.NOT_MEASURABLE


@pytest.mark.parametrize(("ratio", "verdict"), [(1.0, Verdict.VIOLATED), (0.5, Verdict.HELD)])
def test_the_catalogs_ratio_decides(ratio: float, verdict: Verdict) -> None:
    pair = [BY_NAME["IstiodDown"], BY_NAME["EastWestGatewayDown"]]
    measured = [fired("IstiodDown"), fired("EastWestGatewayDown", seconds=None)]
    assert judge(pair, measured, ratio).verdict is verdict


def test_the_measurements_travel_in_the_evidence() -> None:
    measured = [fired("IstiodDown"), fired("EastWestGatewayDown", "west")]
    judgement = judge([BY_NAME["IstiodDown"], BY_NAME["EastWestGatewayDown"]], measured)
    assert measurements_of(judgement.evidence) == measured
    again = judge(ALERTS, measurements_of(judgement.evidence))
    assert again.verdict is Verdict.NOT_MEASURABLE
