"""histogram_quantile and share_at_or_below: PromQL's special cases and brute-force ground truth."""

from __future__ import annotations

import bisect
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshproof.sli.histogram import (
    ISTIO_DURATION_BUCKETS_MS,
    bucket_observations,
    histogram_quantile,
    normalise_buckets,
    share_at_or_below,
)

INF = math.inf
EDGES = [b for b in ISTIO_DURATION_BUCKETS_MS if not math.isinf(b)]

# Durations that often sit exactly on, or just beside, a bucket bound.
durations = st.one_of(
    st.sampled_from(EDGES),
    st.sampled_from(EDGES).map(lambda b: math.nextafter(b, INF)),
    st.floats(min_value=0, max_value=1000, allow_nan=False),
    st.floats(min_value=0, max_value=5e6, allow_nan=False),
)
samples = st.lists(durations, min_size=1, max_size=300)


def test_istio_bounds_are_the_documented_ones() -> None:
    assert ISTIO_DURATION_BUCKETS_MS[:7] == (0.5, 1, 5, 10, 25, 50, 100)
    assert ISTIO_DURATION_BUCKETS_MS[-2:] == (3600000, INF)
    assert len(ISTIO_DURATION_BUCKETS_MS) == 20
    assert list(ISTIO_DURATION_BUCKETS_MS) == sorted(set(ISTIO_DURATION_BUCKETS_MS))


@pytest.mark.parametrize(
    ("q", "expected"),
    [(-0.1, -INF), (1.1, INF)],
)
def test_out_of_range_q(q: float, expected: float) -> None:
    assert histogram_quantile(q, [(1, 1), (INF, 2)]) == expected


@pytest.mark.parametrize(
    ("q", "buckets"),
    [
        (math.nan, [(1, 1), (INF, 2)]),
        (0.5, [(1, 1), (10, 2)]),  # no +Inf
        (0.5, [(INF, 5)]),  # only +Inf: fewer than two buckets
        (0.5, [(1, 0), (INF, 0)]),  # no observations
        (0.5, []),
        (0.0, [(1, 0), (5, 3), (INF, 4)]),  # Go's 0/0 in an empty lowest bucket
    ],
)
def test_nan_cases(q: float, buckets: list[tuple[float, float]]) -> None:
    assert math.isnan(histogram_quantile(q, buckets))


def test_interpolates_linearly_with_zero_as_the_lowest_start() -> None:
    buckets = [(10, 5), (20, 10), (INF, 10)]
    assert histogram_quantile(0.25, buckets) == 5.0
    assert histogram_quantile(0.75, buckets) == 15.0
    assert histogram_quantile(0.5, buckets) == 10.0  # rank on a bound: the bound


def test_rank_in_inf_bucket_returns_highest_finite_bound() -> None:
    assert histogram_quantile(0.99, [(1, 1), (5, 2), (INF, 10)]) == 5.0


def test_lowest_bound_at_or_below_zero_is_returned_as_is() -> None:
    assert histogram_quantile(0.2, [(-1, 5), (1, 8), (INF, 10)]) == -1.0
    assert histogram_quantile(0.2, [(0, 5), (1, 8), (INF, 10)]) == 0.0


def test_order_duplicates_and_non_monotonic_counts_are_fixed_like_promql() -> None:
    shuffled = [(INF, 10), (1, 5), (5, 8)]
    assert histogram_quantile(0.9, shuffled) == histogram_quantile(0.9, sorted(shuffled))
    # 1 and 1.0 are the same bound written twice: summed.
    norm = normalise_buckets([(1, 2), (1.0, 3), (INF, 5)])
    assert norm.buckets == ((1.0, 5.0), (INF, 5.0))
    # A dip is raised to the running maximum.
    norm = normalise_buckets([(1, 5), (5, 3), (10, 9), (INF, 7)])
    assert norm.forced_monotonic
    assert norm.buckets == ((1.0, 5.0), (5.0, 5.0), (10.0, 9.0), (INF, 9.0))


def test_float_noise_between_counts_is_fixed_without_forcing() -> None:
    norm = normalise_buckets([(1, 1e13), (5, 1e13 - 0.001), (INF, 1e13)])
    assert norm.fixed_precision
    assert not norm.forced_monotonic


def test_share_exact_on_a_bound_and_interval_between() -> None:
    buckets = bucket_observations([1, 2, 50, 100, 101, 300])
    exact = share_at_or_below(100, buckets)
    assert exact.exact and exact.value == pytest.approx(4 / 6) and exact.low == exact.high
    between = share_at_or_below(120, buckets)
    assert not between.exact and between.value is None
    assert (between.low, between.high) == (4 / 6, 5 / 6)
    assert (between.lower_edge, between.upper_edge) == (100, 250)
    below_all = share_at_or_below(0.1, buckets)
    assert (below_all.low, below_all.high, below_all.lower_edge) == (0.0, 0.0, -INF)
    assert share_at_or_below(INF, buckets).value == 1.0


def test_share_needs_an_inf_bucket_and_observations() -> None:
    with pytest.raises(ValueError, match=r"no \+Inf bucket"):
        share_at_or_below(100, [(100, 3)])
    empty = share_at_or_below(100, bucket_observations([]))
    assert empty.observations == 0 and math.isnan(empty.low) and math.isnan(empty.high)


def test_bucket_observations_counts_le() -> None:
    buckets = bucket_observations([0.5, 0.6, 7e6], [0.5, 1])
    assert buckets == ((0.5, 1.0), (1.0, 2.0), (INF, 3.0))
    with pytest.raises(ValueError, match="strictly increasing"):
        bucket_observations([1], [5, 1])
    with pytest.raises(ValueError, match="NaN"):
        bucket_observations([math.nan])


@settings(max_examples=300, deadline=None)
@given(samples)
def test_share_at_a_bound_is_the_exact_brute_force_fraction(values: list[float]) -> None:
    buckets = bucket_observations(values)
    for edge in EDGES:
        share = share_at_or_below(edge, buckets)
        at_or_below = sum(1 for v in values if v <= edge)
        assert share.exact
        assert share.count_low == at_or_below
        assert share.low == at_or_below / len(values)


@settings(max_examples=300, deadline=None)
@given(samples, st.floats(min_value=0, max_value=5e6, allow_nan=False))
def test_share_interval_contains_the_true_share(values: list[float], bound: float) -> None:
    share = share_at_or_below(bound, bucket_observations(values))
    true = Fraction(sum(1 for v in values if v <= bound), len(values))
    n = len(values)
    assert Fraction(share.count_low) / n <= true <= Fraction(share.count_high) / n
    assert share.exact == (bound in ISTIO_DURATION_BUCKETS_MS)


@settings(max_examples=300, deadline=None)
@given(
    samples,
    st.floats(min_value=1e-6, max_value=1),
    st.floats(min_value=1e-6, max_value=1),
)
def test_quantile_is_monotone_in_q(values: list[float], q1: float, q2: float) -> None:
    buckets = bucket_observations(values)
    lo, hi = sorted((q1, q2))
    assert histogram_quantile(lo, buckets) <= histogram_quantile(hi, buckets)


@settings(max_examples=300, deadline=None)
@given(samples, st.floats(min_value=1e-6, max_value=1))
def test_quantile_lies_in_the_bucket_of_the_nearest_rank_observation(
    values: list[float], q: float
) -> None:
    buckets = bucket_observations(values)
    result = histogram_quantile(q, buckets)
    # The ceil(q*n)-th smallest observation is in the first bucket whose count reaches q*n.
    rank = max(1, math.ceil(q * len(values)))
    target = sorted(values)[rank - 1]
    index = bisect.bisect_left(list(ISTIO_DURATION_BUCKETS_MS), target)
    if index == len(ISTIO_DURATION_BUCKETS_MS) - 1:
        assert result == ISTIO_DURATION_BUCKETS_MS[-2]
    else:
        lower = ISTIO_DURATION_BUCKETS_MS[index - 1] if index else 0.0
        assert lower <= result <= ISTIO_DURATION_BUCKETS_MS[index]
