"""Comparing shares: a counted share against a required one, and two runs' shares.

``meets_share`` decides a threshold exactly. ``worse_share_test`` decides
whether a share (successful requests, requests under a latency bound) got
worse between a baseline run and a current one: a one-sided two-proportion
test on the counts, never a raw difference of percentages, so 99.0% of 100
requests against 99.5% of 200 is not called a regression while the same
shares over a million requests are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["ShareChange", "meets_share", "worse_share_test"]

_MIN_EXPECTED = 5.0
"""Below this expected count in a cell, the normal approximation is not trusted (Cochran)."""


def meets_share(count: float, total: float, required: float) -> bool:
    """``count / total >= required``, compared exactly, for ``total > 0``.

    ``required`` is read as the decimal it is written as (0.95 means 19/20, not
    the binary double just below it), so 95 of 100 meets 0.95 and 9999 of 10000
    meets 0.9999; float division would get either wrong for some totals.
    """
    return Fraction(count) >= Fraction(repr(required)) * Fraction(total)


@dataclass(frozen=True, slots=True)
class ShareChange:
    """A share in two runs and the one-sided p-value of "the current share is lower"."""

    baseline_good: float
    baseline_total: float
    current_good: float
    current_total: float
    p_value: float
    """P(a drop at least this large | both runs have the same true share)."""
    method: str
    """``two-proportion z`` (pooled, large counts) or ``fisher exact`` (small expected counts)."""

    @property
    def baseline_share(self) -> float:
        return self.baseline_good / self.baseline_total

    @property
    def current_share(self) -> float:
        return self.current_good / self.current_total

    def worse(self, alpha: float) -> bool:
        """The current share is significantly lower than the baseline's at level ``alpha``."""
        return self.current_share < self.baseline_share and self.p_value <= alpha


def _check(good: float, total: float, which: str) -> None:
    if not 0 <= good <= total or total <= 0:
        raise ValueError(f"worse_share_test: {which} needs 0 <= good <= total and total > 0, "
                         f"got {good} of {total}")


def worse_share_test(baseline_good: float, baseline_total: float,
                     current_good: float, current_total: float) -> ShareChange:
    """Test H1 "the current share is lower than the baseline's" against H0 "equal".

    Counts may be fractional (Prometheus' ``increase`` extrapolates); the exact
    test rounds them. With every expected cell count at least 5 the pooled
    two-proportion z-test is used, otherwise Fisher's exact test.
    """
    _check(baseline_good, baseline_total, "the baseline")
    _check(current_good, current_total, "the current run")
    good, total = baseline_good + current_good, baseline_total + current_total
    bad = total - good
    expected = min(n * k / total for n in (baseline_total, current_total) for k in (good, bad))
    if expected >= _MIN_EXPECTED:
        pooled = good / total
        se = math.sqrt(pooled * (1 - pooled) * (1 / baseline_total + 1 / current_total))
        diff = current_good / current_total - baseline_good / baseline_total
        p_value = 0.5 * math.erfc(-(diff / se) / math.sqrt(2)) if se > 0 else 1.0
        method = "two-proportion z"
    else:
        p_value = _fisher_more_bad(round(baseline_total - baseline_good), round(baseline_total),
                                   round(current_total - current_good), round(current_total))
        method = "fisher exact"
    return ShareChange(baseline_good, baseline_total, current_good, current_total,
                       min(1.0, max(0.0, p_value)), method)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _fisher_more_bad(baseline_bad: int, baseline_total: int,
                     current_bad: int, current_total: int) -> float:
    """P(X >= current_bad), X hypergeometric: ``current_total`` draws from both runs' events,
    of which ``baseline_bad + current_bad`` are bad."""
    n = baseline_total + current_total
    bad = baseline_bad + current_bad
    denominator = _log_choose(n, current_total)
    top = min(bad, current_total)
    low = max(current_bad, current_total - (n - bad))
    return sum(math.exp(_log_choose(bad, x) + _log_choose(n - bad, current_total - x)
                        - denominator) for x in range(low, top + 1))
