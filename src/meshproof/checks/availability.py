"""CP-AVAIL and GW-AVAIL: time-weighted availability of an ``up`` series over the window."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from meshproof.clients.prometheus import PromQL
from meshproof.sli.series import availability, judge_availability
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["RESOLUTION_S", "up_query", "judge_up_availability"]

RESOLUTION_S = 1.0
"""Range-query resolution of ``up``: finer than any scrape interval."""


def up_query(app: str) -> str:
    """``up`` of the pods of ``app`` scraped by the mesh's kubernetes-pods job (min over pods)."""
    return f'min(up{{job="kubernetes-pods",app="{app}"}})'


def judge_up_availability(prom: PromQL, *, app: str, window_s: int, required: float,
                          step_s: float, now: float | None = None,
                          resolution_s: float = RESOLUTION_S) -> Judgement:
    """The share of the window ``app``'s pods were up, from ``up`` at ``resolution_s``.

    ``step_s`` is the scrape interval (or longer): a series first seen more than two of them
    into the window is not measurable. The query's resolution is finer than any scrape
    interval, so every scraped sample, a single failed scrape included, is in the series
    (a step of one scrape interval can step over it), and time with no point means the
    target was gone (Prometheus marked the series stale), not that scrapes are sparse.

    The query looks back one more window: a series that was scraped before the window and
    then went missing was down (its target vanished), while one first scraped inside the
    window (a fresh install) was not down before it existed; its share is measured from its
    first sample.
    """
    # Whole seconds: the client sends range bounds rounded, and the judged window must be
    # the one Prometheus evaluated.
    end = float(math.floor(now if now is not None else time.time()))
    start = end - window_s
    query = up_query(app)
    series = prom.range(query, start=datetime.fromtimestamp(start - window_s, UTC),
                        end=datetime.fromtimestamp(end, UTC), step_s=resolution_s)
    evidence = {"query": query, "prometheus": prom.cluster, "window_s": window_s,
                "start": start, "end": end}
    if not series or not series[0].points:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{app} on {prom.cluster}: Prometheus has no up series for the pods "
                         f"(is the kubernetes-pods job scraping them?)", evidence)
    points = series[0].points
    what = f"{app} on {prom.cluster}"
    measured_from = start
    if points[0][0] > start:
        evidence["first_sample"] = points[0][0]
        if points[0][0] > start + 2 * step_s:
            return Judgement(Verdict.NOT_MEASURABLE,
                             f"{what}: Prometheus holds only "
                             f"{end - points[0][0]:.0f}s of the {window_s}s window", evidence)
        measured_from = points[0][0]
        what += f" (first scraped {points[0][0] - start:.0f}s into the window)"
    measured = availability(points, start=measured_from, end=end, staleness=2 * resolution_s)
    judgement = judge_availability(measured, required=required, what=what)
    judgement.evidence.update(evidence)
    return judgement
