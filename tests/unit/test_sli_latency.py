"""The latency verdict is decided from bucket counts and is never wrong about the true share."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from meshproof.sli import (
    ISTIO_DURATION_BUCKETS_MS,
    Verdict,
    bucket_observations,
    judge_latency,
    meets_share,
)

EDGES = [b for b in ISTIO_DURATION_BUCKETS_MS if not math.isinf(b)]


def _judge(values: list[float], threshold: float = 100, min_samples: int = 20) -> Verdict:
    buckets = bucket_observations(values)
    return judge_latency(
        buckets, threshold_ms=threshold, quantile=0.95, min_samples=min_samples
    ).verdict


def test_held_and_violated_at_an_exact_bound() -> None:
    assert _judge([10.0] * 95 + [300.0] * 5) is Verdict.HELD  # exactly 95%
    assert _judge([10.0] * 94 + [300.0] * 6) is Verdict.VIOLATED
    assert _judge([100.0] * 95 + [100.5] * 5) is Verdict.HELD  # the bound itself counts as under it


def test_interpolation_does_not_decide() -> None:
    # 94.5% took <= 100 ms, the rest 249 ms: the true p95 is 249 ms, so "p95 < 120 ms" is
    # false, yet linear interpolation inside the 100-250 bucket puts p95 at about 114 ms.
    values = [10.0] * 945 + [249.0] * 55
    judgement = judge_latency(
        bucket_observations(values), threshold_ms=120, quantile=0.95, min_samples=20
    )
    assert judgement.evidence["interpolated_ms"] < 120
    assert judgement.verdict is Verdict.INCONCLUSIVE
    assert (judgement.evidence["share_low"], judgement.evidence["share_high"]) == (0.945, 1.0)
    assert "interpolated p95" in judgement.reason


def test_threshold_between_bounds_uses_the_interval() -> None:
    buckets = bucket_observations([10.0] * 96 + [200.0] * 4)
    assert (
        judge_latency(buckets, threshold_ms=120, quantile=0.95, min_samples=1).verdict
        is Verdict.HELD
    )
    buckets = bucket_observations([110.0] * 10 + [400.0] * 90)
    assert (
        judge_latency(buckets, threshold_ms=120, quantile=0.95, min_samples=1).verdict
        is Verdict.VIOLATED
    )
    buckets = bucket_observations([10.0] * 90 + [130.0] * 10)
    judgement = judge_latency(buckets, threshold_ms=120, quantile=0.95, min_samples=1)
    assert judgement.verdict is Verdict.INCONCLUSIVE
    assert "between 90% and 100%" in judgement.reason


def test_too_few_or_no_observations() -> None:
    few = judge_latency(
        bucket_observations([1.0] * 5), threshold_ms=100, quantile=0.95, min_samples=50
    )
    assert few.verdict is Verdict.INCONCLUSIVE and "only 5 requests" in few.reason
    none = judge_latency(bucket_observations([]), threshold_ms=100, quantile=0.95, min_samples=1)
    assert none.verdict is Verdict.NOT_MEASURABLE
    no_inf = judge_latency([(100, 3)], threshold_ms=100, quantile=0.95, min_samples=1)
    assert no_inf.verdict is Verdict.NOT_MEASURABLE and "+Inf" in no_inf.reason


def test_required_share_is_compared_as_the_written_decimal() -> None:
    assert meets_share(95, 100, 0.95)
    assert meets_share(9999, 10000, 0.9999)
    assert not meets_share(9998, 10000, 0.9999)
    assert meets_share(999_999, 1_000_000, 0.999999)


durations = st.one_of(
    st.sampled_from(EDGES),
    st.floats(min_value=0, max_value=400, allow_nan=False),
    st.floats(min_value=0, max_value=5e6, allow_nan=False),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(durations, min_size=1, max_size=200),
    st.one_of(st.sampled_from(EDGES), st.floats(min_value=0.1, max_value=1e6)),
    st.one_of(st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.999]), st.floats(0.01, 1.0)),
)
def test_verdict_never_contradicts_the_true_share(
    values: list[float], threshold: float, quantile: float
) -> None:
    judgement = judge_latency(
        bucket_observations(values), threshold_ms=threshold, quantile=quantile, min_samples=1
    )
    true_share = Fraction(sum(1 for v in values if v <= threshold), len(values))
    required = Fraction(repr(quantile))
    if judgement.verdict is Verdict.HELD:
        assert true_share >= required
    elif judgement.verdict is Verdict.VIOLATED:
        assert true_share < required
    else:
        assert judgement.verdict is Verdict.INCONCLUSIVE
        assert threshold not in EDGES, "an exact bound must always decide"
