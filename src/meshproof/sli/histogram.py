"""Cumulative (classic) Prometheus histograms: quantiles and shares at a bound.

A histogram is a sequence of ``(upper_bound, cumulative_count)`` pairs, one per
``le`` bucket, the ``+Inf`` bucket included, exactly as the ``_bucket`` series
of an Istio metric carry them.

``histogram_quantile`` reproduces PromQL's ``histogram_quantile`` over classic
buckets (``bucketQuantile`` in prometheus/prometheus ``promql/quantile.go``):
buckets are sorted by bound, buckets with equal bounds are summed, counts that
differ from their predecessor by a relative 1e-12 or less are set equal to it
(added in Prometheus 2.46; it changes nothing for integer counts below 1e12),
then decreasing counts are raised to the running maximum (the "monotonicity
fix-up"). The test suite checks the results against a real Prometheus.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "ISTIO_DURATION_BUCKETS_MS",
    "Buckets",
    "NormalisedBuckets",
    "Share",
    "bucket_observations",
    "histogram_quantile",
    "normalise_buckets",
    "share_at_or_below",
]

Buckets = Sequence[tuple[float, float]]
"""``(upper_bound, cumulative_count)`` pairs, in any order, ``+Inf`` included."""

ISTIO_DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0, 30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0, math.inf,
)  # fmt: skip
"""Bucket bounds of ``istio_request_duration_milliseconds`` (Istio's stats filter), ``+Inf`` last."""

# Prometheus treats counts this close (relative) to their predecessor as equal.
_PRECISION_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True)
class NormalisedBuckets:
    """Buckets the way PromQL sees them before it interpolates."""

    buckets: tuple[tuple[float, float], ...]
    """Sorted by bound, one per distinct bound, counts non-decreasing."""
    has_inf: bool
    """Whether the highest bound is ``+Inf``; without it the total is unknown."""
    forced_monotonic: bool
    """Some count was lower than a count below it and had to be raised."""
    fixed_precision: bool
    """Some count differed from its predecessor only by float rounding and was made equal."""

    @property
    def observations(self) -> float:
        """The number of observations (the ``+Inf`` count); NaN when there is no ``+Inf`` bucket."""
        if not self.has_inf or not self.buckets:
            return math.nan
        return self.buckets[-1][1]


def normalise_buckets(buckets: Buckets) -> NormalisedBuckets:
    """Sort, coalesce and repair buckets as PromQL does (see the module docstring)."""
    ordered = sorted((float(b), float(c)) for b, c in buckets)
    if not ordered:
        return NormalisedBuckets((), False, False, False)
    has_inf = math.isinf(ordered[-1][0]) and ordered[-1][0] > 0

    coalesced: list[list[float]] = []
    for bound, count in ordered:
        if coalesced and coalesced[-1][0] == bound:
            coalesced[-1][1] += count
        else:
            coalesced.append([bound, count])

    fixed_precision = False
    prev = coalesced[0][1]
    for entry in coalesced[1:]:
        curr = entry[1]
        delta = abs(curr - prev)
        if delta == 0:
            continue
        # Go divides by zero to +Inf here; Python would raise.
        eps = delta / curr if curr != 0 else math.inf
        if eps <= _PRECISION_TOLERANCE:
            entry[1] = prev
            fixed_precision = True
        else:
            prev = curr

    forced_monotonic = False
    running_max = coalesced[0][1]
    for entry in coalesced[1:]:
        if entry[1] > running_max:
            running_max = entry[1]
        elif entry[1] < running_max:
            entry[1] = running_max
            forced_monotonic = True

    return NormalisedBuckets(
        buckets=tuple((b, c) for b, c in coalesced),
        has_inf=has_inf,
        forced_monotonic=forced_monotonic,
        fixed_precision=fixed_precision,
    )


def histogram_quantile(q: float, buckets: Buckets) -> float:
    """The ``q``-quantile as PromQL's ``histogram_quantile(q, ...)`` computes it.

    NaN for NaN ``q``, for no ``+Inf`` bucket, for fewer than two distinct bounds
    and for zero observations; ``-Inf`` for ``q < 0``, ``+Inf`` for ``q > 1``.
    Inside a bucket the value is linearly interpolated; the lowest bucket starts
    at 0 if its bound is positive (else its bound is the answer); a rank that
    falls into the ``+Inf`` bucket yields the highest finite bound.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    norm = normalise_buckets(buckets)
    if not norm.has_inf or len(norm.buckets) < 2:
        return math.nan
    bounds = [b for b, _ in norm.buckets]
    counts = [c for _, c in norm.buckets]
    observations = counts[-1]
    if observations == 0:
        return math.nan
    rank = q * observations
    # The first bucket (the +Inf one excluded) whose count reaches the rank, like
    # Go's sort.Search over len-1 buckets.
    index = bisect.bisect_left(counts, rank, 0, len(counts) - 1)
    if index == len(counts) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start = 0.0
    end = bounds[index]
    in_bucket = counts[index]
    if index > 0:
        start = bounds[index - 1]
        in_bucket -= counts[index - 1]
        rank -= counts[index - 1]
    return start + (end - start) * _ieee_divide(rank, in_bucket)


def _ieee_divide(numerator: float, denominator: float) -> float:
    """Division as Go does it: x/0 is ±Inf and 0/0 is NaN (q = 0 over an empty lowest bucket)."""
    if denominator != 0:
        return numerator / denominator
    if numerator == 0 or math.isnan(numerator):
        return math.nan
    return math.copysign(math.inf, numerator) * math.copysign(1.0, denominator)


@dataclass(frozen=True, slots=True)
class Share:
    """The share of observations at or below a bound, exact or as an interval.

    A bucket counts the observations ``<= le``, so at a bucket bound the share is
    exact (``low == high``); between two bounds only the interval between the
    shares at the neighbouring bounds is known.
    """

    bound: float
    """The value asked about."""
    low: float
    """The smallest share consistent with the buckets (NaN with zero observations)."""
    high: float
    """The largest share consistent with the buckets (NaN with zero observations)."""
    exact: bool
    """``bound`` is a bucket bound (or ``+Inf``), so ``low == high`` is the share itself."""
    count_low: float
    """Observations known to be ``<= bound`` (the count at ``lower_edge``)."""
    count_high: float
    """Observations that may be ``<= bound`` (the count at ``upper_edge``)."""
    observations: float
    """All observations (the ``+Inf`` count)."""
    lower_edge: float
    """The highest bucket bound ``<= bound`` (``-Inf`` if there is none)."""
    upper_edge: float
    """The lowest bucket bound ``>= bound``."""

    @property
    def value(self) -> float | None:
        """The share when it is exact, else None."""
        return self.low if self.exact else None


def share_at_or_below(bound: float, buckets: Buckets) -> Share:
    """The share of observations ``<= bound``: exact at a bucket bound, otherwise an interval.

    Counts are normalised as PromQL does (``normalise_buckets``). Raises
    ``ValueError`` when there is no ``+Inf`` bucket, since the total is then unknown,
    or when ``bound`` is NaN.
    """
    if math.isnan(bound):
        raise ValueError("share_at_or_below: the bound is NaN")
    norm = normalise_buckets(buckets)
    if not norm.has_inf:
        raise ValueError(
            f"share_at_or_below({bound:g}): the histogram has no +Inf bucket, so its total is unknown"
        )
    bounds = [b for b, _ in norm.buckets]
    counts = [c for _, c in norm.buckets]
    total = counts[-1]
    at = bisect.bisect_left(bounds, bound)  # first bucket bound >= bound; exists since +Inf is last
    exact = bounds[at] == bound
    count_high = counts[at]
    if exact:
        lower_edge, count_low = bounds[at], counts[at]
    elif at == 0:
        lower_edge, count_low = -math.inf, 0.0
    else:
        lower_edge, count_low = bounds[at - 1], counts[at - 1]
    if total == 0:
        low = high = math.nan
    else:
        low, high = count_low / total, count_high / total
    return Share(
        bound=bound,
        low=low,
        high=high,
        exact=exact,
        count_low=count_low,
        count_high=count_high,
        observations=total,
        lower_edge=lower_edge,
        upper_edge=bounds[at],
    )


def bucket_observations(
    values: Iterable[float], bounds: Sequence[float] = ISTIO_DURATION_BUCKETS_MS
) -> tuple[tuple[float, float], ...]:
    """Cumulative buckets for raw observations, as a Prometheus client fills them.

    Each value counts in every bucket whose bound is ``>= value``. ``bounds`` must be
    strictly increasing; ``+Inf`` is appended when missing. NaN values are rejected.
    """
    edges = [float(b) for b in bounds]
    if any(b2 <= b1 for b1, b2 in itertools.pairwise(edges)):
        raise ValueError(f"bucket bounds must be strictly increasing: {edges}")
    if not edges or edges[-1] != math.inf:
        edges.append(math.inf)
    per_bucket = [0] * len(edges)
    for value in values:
        if math.isnan(value):
            raise ValueError("bucket_observations: NaN is not an observation")
        per_bucket[bisect.bisect_left(edges, value)] += 1
    cumulative: list[tuple[float, float]] = []
    running = 0
    for edge, n in zip(edges, per_bucket):
        running += n
        cumulative.append((edge, float(running)))
    return tuple(cumulative)
