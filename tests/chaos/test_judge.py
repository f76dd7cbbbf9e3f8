"""Drill verdicts from measured numbers against the catalog's thresholds (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from meshproof.catalog import EffectiveThresholds, load_catalog
from meshproof.chaos.judge import (
    judge_bound,
    judge_circuit_break,
    judge_cp_recovery,
    judge_ew_failover,
)
from meshproof.sli.verdict import Verdict


def thresholds(gid: str) -> EffectiveThresholds:
    return load_catalog().effective_thresholds(gid, {})


EW_HEALTHY: dict[str, Any] = {"good": 200, "total": 200, "eject_s": 2.5, "eject_waited_s": 2.5,
                              "recover_s": 9.0, "recover_waited_s": 9.4}


def test_ew_failover_holds_on_served_traffic_quick_ejection_and_recovery() -> None:
    judgement = judge_ew_failover(EW_HEALTHY, thresholds("EW-FAILOVER"))
    assert judgement.verdict is Verdict.HELD
    assert judgement.evidence["ejection.eject_s"] == 2.5
    assert judgement.evidence["traffic.requests_in_window"] == 200


@pytest.mark.parametrize(("change", "words"), [
    ({"eject_s": None, "eject_waited_s": 0.4}, "no ejection of the lost gateway's endpoint"),
    ({"eject_s": 61.0}, "over the limit of 60 s"),
    ({"good": 190}, "190 of 200"),
    ({"recover_s": None, "recover_waited_s": 120.0}, "no cross-cluster answer"),
])
def test_ew_failover_is_violated_by_any_broken_part(change: dict[str, Any], words: str) -> None:
    judgement = judge_ew_failover({**EW_HEALTHY, **change}, thresholds("EW-FAILOVER"))
    assert judgement.verdict is Verdict.VIOLATED
    assert judgement.reason.startswith("EW-FAILOVER: ") and words in judgement.reason


def test_ew_failover_without_traffic_in_the_window_is_not_measurable() -> None:
    judgement = judge_ew_failover({**EW_HEALTHY, "good": 0, "total": 0},
                                  thresholds("EW-FAILOVER"))
    assert judgement.verdict is Verdict.NOT_MEASURABLE


def test_thresholds_come_from_the_target_overrides() -> None:
    strict = load_catalog().effective_thresholds(
        "EW-FAILOVER", {"EW-FAILOVER": _override(max_eject_s=1)})
    assert judge_ew_failover(EW_HEALTHY, strict).verdict is Verdict.VIOLATED


def _override(**values: float) -> Any:
    from meshproof.catalog import ThresholdOverride

    return ThresholdOverride(values=values, reason=None)


def test_cp_recovery_needs_traffic_served_and_every_proxy_synced() -> None:
    t = thresholds("CP-RECOVERY")
    ok = {"good": 1000, "total": 1000, "proxies": 10, "synced": 10}
    assert judge_cp_recovery(ok, t).verdict is Verdict.HELD
    stale = judge_cp_recovery({**ok, "synced": 9, "stale": ["a.b"]}, t)
    assert stale.verdict is Verdict.VIOLATED and "9 of 10" in stale.reason
    assert judge_cp_recovery({**ok, "good": 998}, t).verdict is Verdict.VIOLATED
    assert judge_cp_recovery({**ok, "proxies": 0, "synced": 0}, t).verdict is (
        Verdict.NOT_MEASURABLE)


def test_circuit_break_parts() -> None:
    t = thresholds("CIRCUIT-BREAK")
    ok = {"shed": 10, "shed_uo": 10, "overflow": 10, "consecutive_5xx": 5, "eject_s": 1.5,
          "eject_waited_s": 1.5}
    assert judge_circuit_break(ok, t).verdict is Verdict.HELD
    assert judge_circuit_break({**ok, "shed_uo": 9}, t).verdict is Verdict.VIOLATED
    never = judge_circuit_break({**ok, "shed": 0, "shed_uo": 0, "overflow": 0}, t)
    assert never.verdict is Verdict.VIOLATED and "never overflowed" in never.reason
    late = judge_circuit_break({**ok, "consecutive_5xx": 6}, t)
    assert late.verdict is Verdict.VIOLATED and "after 6 consecutive" in late.reason
    assert judge_circuit_break({**ok, "consecutive_5xx": None, "eject_s": None}, t).verdict is (
        Verdict.VIOLATED)


def test_bound_says_how_long_it_waited() -> None:
    judgement = judge_bound(None, limit=60, what="ejection", waited=12.34, key="eject_s")
    assert judgement.verdict is Verdict.VIOLATED
    assert judgement.reason == "no ejection within the 12.3 s waited (limit 60 s)"


@pytest.mark.parametrize(("judge", "gid"), [(judge_ew_failover, "EW-FAILOVER"),
                                            (judge_cp_recovery, "CP-RECOVERY"),
                                            (judge_circuit_break, "CIRCUIT-BREAK")])
def test_a_measurement_never_made_is_not_taken_for_zero(judge: Any, gid: str) -> None:
    with pytest.raises(KeyError):
        judge({"good": 10, "total": 10}, thresholds(gid))
