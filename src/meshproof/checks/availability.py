"""CP-AVAIL and GW-AVAIL: time-weighted availability of an ``up`` series over the window."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from meshproof.clients.prometheus import PromQL
from meshproof.sli.series import availability, judge_availability
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["up_query", "judge_up_availability"]


def up_query(app: str) -> str:
    """``up`` of the pods of ``app`` scraped by the mesh's kubernetes-pods job (min over pods)."""
    return f'min(up{{job="kubernetes-pods",app="{app}"}})'


def judge_up_availability(prom: PromQL, *, app: str, window_s: int, required: float,
                          step_s: float, now: float | None = None) -> Judgement:
    # Whole seconds: the client sends range bounds rounded, and the judged window must be
    # the one Prometheus evaluated.
    end = float(math.floor(now if now is not None else time.time()))
    start = end - window_s
    query = up_query(app)
    series = prom.range(query, start=datetime.fromtimestamp(start, UTC),
                        end=datetime.fromtimestamp(end, UTC), step_s=step_s)
    evidence = {"query": query, "prometheus": prom.cluster, "window_s": window_s,
                "start": start, "end": end}
    if not series or not series[0].points:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{app} on {prom.cluster}: Prometheus has no up series for the pods "
                         f"(is the kubernetes-pods job scraping them?)", evidence)
    points = series[0].points
    if points[0][0] > start + 2 * step_s:
        evidence["first_sample"] = points[0][0]
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{app} on {prom.cluster}: Prometheus holds only "
                         f"{end - points[0][0]:.0f}s of the {window_s}s window", evidence)
    measured = availability(points, start=start, end=end, staleness=2 * step_s)
    judgement = judge_availability(measured, required=required,
                                   what=f"{app} on {prom.cluster}")
    judgement.evidence.update(evidence)
    return judgement
