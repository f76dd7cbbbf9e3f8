"""ALERTS-QUIET: the runbook's alert expressions, evaluated now, return nothing at steady state."""

from __future__ import annotations

from collections.abc import Iterable

from meshproof.catalog import Alert
from meshproof.clients.prometheus import PromQL
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["alert_queries", "judge_alerts_quiet"]


def alert_queries(alert: Alert, clusters: list[str]) -> list[str]:
    """The alert's expression; templated ones once per ordered pair of clusters."""
    expr = alert.expr
    if "$source_cluster" not in expr:
        return [expr]
    return [expr.replace("$source_cluster", a).replace("$destination_cluster", b)
            for a in clusters for b in clusters if a != b]


def judge_alerts_quiet(prom: PromQL, alerts: Iterable[Alert], clusters: list[str],
                       *, max_firing: int) -> Judgement:
    firing: dict[str, int] = {}
    evaluated = 0
    for alert in alerts:
        for query in alert_queries(alert, clusters):
            evaluated += 1
            result = prom.instant(query)
            if result:
                firing[alert.name] = firing.get(alert.name, 0) + len(result)
    evidence = {"evaluated": evaluated, "firing": firing, "prometheus": prom.cluster}
    if evaluated == 0:
        return Judgement(Verdict.NOT_MEASURABLE, "no alert expression to evaluate", evidence)
    if sum(firing.values()) > max_firing:
        return Judgement(Verdict.VIOLATED,
                         f"{prom.cluster}: alerts firing at steady state: "
                         f"{', '.join(sorted(firing))}", evidence)
    return Judgement(Verdict.HELD,
                     f"{prom.cluster}: none of {evaluated} alert expressions fires", evidence)
