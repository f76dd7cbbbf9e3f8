"""DISCOVERY-FAILOVER's verdict from what the consul-server-loss drill read (pure functions).

While the Consul leader is lost and replaced, the drill keeps reading the catalog and
the Kubernetes endpoints of the namespaces under test. A reading Consul did not answer
(no leader yet) is unavailability, not a wrong answer; every answer it gave must agree
with Kubernetes (DISCOVERY's Consul-vs-Kubernetes rule), and at least one must come
after the new leader, so a catalog that is not served again is not "correct".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshproof.catalog import EffectiveThresholds
from meshproof.chaos.judge import combine, judge_bound
from meshproof.sli.ratios import judge_ratio, success_ratio
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["GUARANTEE", "CatalogReading", "catalog_problems", "judge_catalog_readings",
           "judge_discovery_failover"]

GUARANTEE = "DISCOVERY-FAILOVER"


@dataclass(frozen=True, slots=True)
class CatalogReading:
    """One reading of the catalog during the drill."""

    at: float
    answered: bool
    """Whether Consul answered (False: no leader, unreachable)."""
    problems: tuple[str, ...] = field(default_factory=tuple)
    """What disagreed with Kubernetes, in words (empty: all agreed)."""
    after_leader: bool = False
    """Taken once the new leader was seen."""

    @property
    def correct(self) -> bool:
        return self.answered and not self.problems


def catalog_problems(consul: Mapping[str, set[str]] | None,
                     kubernetes: Mapping[tuple[str, str], set[str]]) -> list[str]:
    """Where the catalog sync's instances (Consul name ``<service>-<namespace>`` → passing
    ``address:port``) disagree with the ready Kubernetes endpoints ((namespace, service) →
    ``ip:port``); a service with no endpoints may be absent from Consul."""
    if consul is None:
        return ["Consul has no catalog sync node"]
    out = []
    for (namespace, service), ready in sorted(kubernetes.items()):
        held = consul.get(f"{service}-{namespace}")
        if held is None and not ready:
            continue
        if held != ready:
            out.append(f"{service}-{namespace}: Consul {sorted(held or ())} ≠ Kubernetes "
                       f"{sorted(ready)}")
    return out


def judge_catalog_readings(readings: Sequence[CatalogReading], *,
                           required: float) -> Judgement:
    """The share of answered readings that agreed with Kubernetes, and an answer after the
    new leader."""
    answered = [r for r in readings if r.answered]
    correct = [r for r in answered if r.correct]
    after = [r for r in answered if r.after_leader]
    wrong = next((r for r in answered if not r.correct), None)
    evidence: dict[str, Any] = {"readings": len(readings), "answered": len(answered),
                                "correct": len(correct), "answered_after_leader": len(after),
                                "first_problems": list(wrong.problems[:3]) if wrong else []}
    if not answered:
        return Judgement(Verdict.VIOLATED, f"Consul answered none of {len(readings)} catalog "
                         "readings during and after the leader change", evidence)
    judgement = judge_ratio(success_ratio(len(correct), len(answered)), required=required,
                            what="catalog answers agreeing with Kubernetes during and after "
                                 "the leader change")
    judgement.evidence.update(evidence)
    if judgement.verdict is Verdict.VIOLATED and wrong is not None:
        return Judgement(Verdict.VIOLATED, f"{judgement.reason} — "
                         f"{'; '.join(wrong.problems[:2])}", judgement.evidence)
    if judgement.held and not after:
        return Judgement(Verdict.VIOLATED, "the catalog was not served once the new leader "
                         "was elected", judgement.evidence)
    return judgement


def judge_discovery_failover(measured: Mapping[str, Any],
                             thresholds: EffectiveThresholds) -> Judgement:
    """DISCOVERY-FAILOVER from ``measured``: ``leader_s`` (seconds from the loss until a live
    server other than the lost one leads; None: not within ``leader_waited_s``) and
    ``readings`` (``CatalogReading``)."""
    return combine(GUARANTEE, {
        "leader": judge_bound(measured["leader_s"], limit=float(thresholds["max_leader_s"]),
                              waited=float(measured.get("leader_waited_s") or 0.0),
                              key="leader_s", what="new Consul leader"),
        "catalog": judge_catalog_readings(measured["readings"],
                                          required=float(thresholds["min_correct_ratio"])),
    })
