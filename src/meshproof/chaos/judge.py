"""Drill verdicts from measured numbers against the catalog's thresholds (pure functions).

Each judge takes what a drill measured and the guarantee's ``EffectiveThresholds``
and returns one ``Judgement``: violated as soon as one part is broken, not
measurable when a part has no measurement, held only when every part held.
``meshproof.chaos.probes`` and the drill steps both call these, so plain
``chaos run`` and ``meshproof run --profile drill`` decide alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshproof.catalog import EffectiveThresholds
from meshproof.sli.ratios import judge_ratio, success_ratio
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["combine", "judge_bound", "judge_circuit_break", "judge_cp_recovery",
           "judge_ew_failover", "judge_traffic"]


def combine(guarantee_id: str, parts: Mapping[str, Judgement]) -> Judgement:
    """One judgement from its named parts: the first violation, else the first unmeasured
    part, else held; each part's evidence is kept under ``<part>.<key>``."""
    evidence: dict[str, Any] = {f"{name}.{key}": value for name, part in parts.items()
                                for key, value in part.evidence.items()}
    for wanted in (Verdict.VIOLATED, Verdict.NOT_MEASURABLE, Verdict.INCONCLUSIVE):
        for part in parts.values():
            if part.verdict is wanted:
                return Judgement(wanted, f"{guarantee_id}: {part.reason}", evidence)
    reasons = "; ".join(p.reason for p in parts.values())
    return Judgement(Verdict.HELD, f"{guarantee_id}: {reasons}", evidence)


def judge_bound(seconds: float | None, *, limit: float, what: str, waited: float,
                key: str) -> Judgement:
    """A duration that must happen within ``limit`` seconds (None: not within ``waited``)."""
    evidence: dict[str, Any] = {key: seconds, f"{key}_limit": limit}
    if seconds is None:
        return Judgement(Verdict.VIOLATED,
                         f"no {what} within the {waited:.1f} s waited "
                         f"(limit {limit:g} s)", evidence)
    if seconds <= limit:
        return Judgement(Verdict.HELD, f"{what} after {seconds:.1f} s (limit {limit:g} s)",
                         evidence)
    return Judgement(Verdict.VIOLATED, f"{what} after {seconds:.1f} s, over the limit of "
                     f"{limit:g} s", evidence)


def judge_traffic(good: int, total: int, *, required: float, what: str) -> Judgement:
    """The success ratio of the requests made during a fault window."""
    judgement = judge_ratio(success_ratio(good, total), required=required, what=what)
    judgement.evidence.update({"requests_in_window": total, "successful_in_window": good})
    return judgement


def judge_ew_failover(measured: Mapping[str, Any], thresholds: EffectiveThresholds) -> Judgement:
    """EW-FAILOVER: traffic served during the loss, remote endpoint ejected, recovery after.

    ``measured``: ``good``/``total`` requests in the fault window, ``eject_s`` (None:
    not ejected) and ``eject_waited_s``, ``recover_s`` (None: not back) and
    ``recover_waited_s``.
    """
    return combine("EW-FAILOVER", {
        "traffic": judge_traffic(int(measured["good"]), int(measured["total"]),
                      required=float(thresholds["min_success_ratio"]),
                      what="requests served while the east-west gateway was lost"),
        "ejection": judge_bound(measured["eject_s"], limit=float(thresholds["max_eject_s"]),
                    waited=float(measured.get("eject_waited_s") or 0.0), key="eject_s",
                    what="ejection of the lost gateway's endpoint"),
        "recovery": judge_bound(measured["recover_s"], limit=float(thresholds["max_recover_s"]),
                    waited=float(measured.get("recover_waited_s") or 0.0), key="recover_s",
                    what="cross-cluster answer after the restore"),
    })


def judge_cp_recovery(measured: Mapping[str, Any], thresholds: EffectiveThresholds) -> Judgement:
    """CP-RECOVERY: traffic served while istiod was out; every proxy in sync after the restart.

    ``measured``: ``good``/``total`` requests during the outage; ``synced``/``proxies``
    after the runbook's recovery steps.
    """
    proxies = int(measured["proxies"])
    synced = int(measured["synced"])
    sync = judge_ratio(success_ratio(synced, proxies),
                       required=float(thresholds["min_synced_ratio"]),
                       what="proxies in sync with istiod after the restart")
    sync.evidence.update({"proxies": proxies, "synced": synced,
                          "stale": list(measured.get("stale") or [])[:20]})
    return combine("CP-RECOVERY", {
        "traffic": judge_traffic(int(measured["good"]), int(measured["total"]),
                                 required=float(thresholds["min_success_ratio"]),
                                 what="requests served while istiod was down"),
        "sync": sync,
    })


def judge_circuit_break(measured: Mapping[str, Any],
                        thresholds: EffectiveThresholds) -> Judgement:
    """CIRCUIT-BREAK: overflow shed as 503 UO; a failing host ejected after N consecutive 5xx.

    ``measured``: ``shed`` (503 answers to the overload), ``shed_uo`` (those carrying
    ``x-envoy-overloaded``), ``overflow`` (Envoy's pending-overflow counter increase),
    ``consecutive_5xx`` (errors the ejected host returned before its ejection; None:
    never ejected), ``eject_s`` and ``eject_waited_s``.
    """
    shed, shed_uo = int(measured["shed"]), int(measured["shed_uo"])
    overflow = int(measured["overflow"])
    parts: dict[str, Judgement] = {}
    if shed == 0 and overflow == 0:
        parts["overflow"] = Judgement(
            Verdict.VIOLATED, "the overload never overflowed the connection pool (no 503, "
            "upstream_rq_pending_overflow unchanged): no circuit breaker acted",
            {"shed": 0, "overflow": 0})
    else:
        uo = judge_ratio(success_ratio(shed_uo, shed),
                         required=float(thresholds["min_shed_uo_ratio"]),
                         what="shed requests answered 503 with the UO overflow flag")
        uo.evidence.update({"shed": shed, "shed_uo": shed_uo, "overflow": overflow})
        parts["overflow"] = uo
    errors = measured["consecutive_5xx"]
    limit = float(thresholds["max_consecutive_5xx"])
    if errors is None:
        parts["errors"] = Judgement(Verdict.VIOLATED, "the failing host was never ejected",
                                    {"consecutive_5xx": None})
    elif float(errors) > limit:
        parts["errors"] = Judgement(
            Verdict.VIOLATED, f"the failing host was ejected only after {errors} consecutive "
            f"5xx (limit {limit:g})", {"consecutive_5xx": errors})
    else:
        parts["errors"] = Judgement(Verdict.HELD, f"the failing host was ejected after "
                                    f"{errors} consecutive 5xx (limit {limit:g})",
                                    {"consecutive_5xx": errors})
    parts["ejection"] = judge_bound(
        measured["eject_s"], limit=float(thresholds["max_eject_s"]),
        waited=float(measured.get("eject_waited_s") or 0.0), key="eject_s",
        what="ejection of the failing host")
    return combine("CIRCUIT-BREAK", parts)
