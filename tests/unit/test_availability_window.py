"""CP-AVAIL / GW-AVAIL over a window: a series first scraped inside the window (a fresh
install) is judged from its first sample; one that went missing inside the window was down."""

from __future__ import annotations

from datetime import datetime

from meshproof.checks.availability import judge_up_availability
from meshproof.clients.prometheus import Series
from meshproof.sli.verdict import Verdict

NOW = 10_000.0
WINDOW = 30
STEP = 5.0


class RangeOnly:
    """Answers a range query from raw samples as Prometheus does: at each step the latest
    sample within the lookback, none after a staleness marker (``None``: the target went)."""

    cluster = "aws-eks"
    lookback = 300.0

    def __init__(self, samples: list[tuple[float, float | None]]) -> None:
        self.samples = samples
        self.asked: list[tuple[float, float, float]] = []

    def range(self, query: str, *, start: datetime, end: datetime, step_s: float) -> list[Series]:
        self.asked.append((start.timestamp(), end.timestamp(), step_s))
        points: list[tuple[float, float]] = []
        t = start.timestamp()
        while t <= end.timestamp():
            latest = [v for ts, v in self.samples if t - self.lookback < ts <= t]
            if latest and latest[-1] is not None:
                points.append((t, latest[-1]))
            t += step_s
        return [Series({}, points)] if points else []


def judge(points: list[tuple[float, float | None]]) -> tuple[Verdict, str]:
    j = judge_up_availability(RangeOnly(points), app="istiod", window_s=WINDOW,  # type: ignore[arg-type]
                              required=0.999, step_s=STEP, now=NOW)
    return j.verdict, j.reason


def steps(first: float, last: float,
          value: float | None = 1.0) -> list[tuple[float, float | None]]:
    out: list[tuple[float, float | None]] = []
    t = first
    while t <= last:
        out.append((t, value))
        t += STEP
    return out


def test_a_series_first_scraped_just_inside_the_window_is_judged_from_its_first_sample() -> None:
    verdict, reason = judge(steps(NOW - WINDOW + 3, NOW))
    assert verdict is Verdict.HELD, reason
    assert "first scraped 3s into the window" in reason


def test_a_series_that_went_missing_inside_the_window_was_down() -> None:
    # Scraped before the window, gone (stale) for 15 s at its start, back since: an outage.
    points = (steps(NOW - 2 * WINDOW, NOW - WINDOW - 10)
              + steps(NOW - WINDOW - 5, NOW - WINDOW - 5, None) + steps(NOW - WINDOW + 5, NOW))
    verdict, reason = judge(points)
    assert verdict is Verdict.VIOLATED, reason


def test_a_series_first_scraped_late_in_the_window_is_not_measurable() -> None:
    verdict, reason = judge(steps(NOW - 10, NOW))
    assert verdict is Verdict.NOT_MEASURABLE and "holds only" in reason


def test_down_samples_inside_the_window_violate() -> None:
    points = (steps(NOW - 2 * WINDOW, NOW - 15) + steps(NOW - 10, NOW - 10, 0.0)
              + steps(NOW - 5, NOW))
    verdict, reason = judge(points)
    assert verdict is Verdict.VIOLATED, reason


def test_the_query_looks_back_one_more_window() -> None:
    prom = RangeOnly(steps(NOW - 2 * WINDOW, NOW))
    judge_up_availability(prom, app="istiod", window_s=WINDOW, required=0.999,  # type: ignore[arg-type]
                          step_s=STEP, now=NOW)
    assert prom.asked == [(NOW - 2 * WINDOW, NOW, 1.0)]


def test_one_failed_scrape_between_steps_of_a_scrape_interval_is_not_stepped_over() -> None:
    # Scrapes every 5 s at x.5 s; one of them failed. A 5 s step would only see x.0 points.
    samples = steps(NOW - 2 * WINDOW + 0.5, NOW - 12.5) + steps(NOW - 7.5, NOW - 7.5, 0.0) + \
        steps(NOW - 2.5, NOW)
    verdict, reason = judge(samples)
    assert verdict is Verdict.VIOLATED, reason


def test_scrapes_sparser_than_the_resolution_are_not_unobserved_time() -> None:
    # A real mesh's Prometheus scrapes every 15 s: the points between scrapes hold.
    samples: list[tuple[float, float | None]] = []
    t = NOW - 2 * WINDOW
    while t <= NOW:
        samples.append((t, 1.0))
        t += 15.0
    verdict, reason = judge(samples)
    assert verdict is Verdict.HELD, reason
