"""Success and handshake ratios: zero denominators are not 100%, comparisons are exact."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshproof.sli import (
    Ratio,
    Verdict,
    handshake_success_ratio,
    is_not_5xx,
    judge_ratio,
    success_ratio,
    success_ratio_by_code,
)


def test_zero_denominator_is_not_measurable_not_full() -> None:
    ratio = success_ratio(0, 0)
    assert not ratio.measurable and ratio.value is None
    judgement = judge_ratio(ratio, required=0.9999, what="MTLS-HANDSHAKE handshakes")
    assert judgement.verdict is Verdict.NOT_MEASURABLE
    assert "nothing was counted" in judgement.reason


def test_handshake_ratio_from_envoy_counters() -> None:
    ratio = handshake_success_ratio(handshakes=9999, failures=1)
    assert ratio == Ratio(good=9999, total=10000)
    assert judge_ratio(ratio, required=0.9999, what="handshakes").verdict is Verdict.HELD
    worse = handshake_success_ratio(handshakes=9998, failures=2)
    judgement = judge_ratio(worse, required=0.9999, what="handshakes")
    assert judgement.verdict is Verdict.VIOLATED
    assert "9998 of 10000" in judgement.reason
    assert judgement.evidence["total"] == 10000


def test_min_total_makes_small_counts_inconclusive() -> None:
    judgement = judge_ratio(success_ratio(3, 3), required=0.99, what="requests", min_total=100)
    assert judgement.verdict is Verdict.INCONCLUSIVE


def test_by_code_counts_5xx_and_no_response_as_failures() -> None:
    ratio = success_ratio_by_code({"200": 90, "404": 5, "503": 4, "0": 1})
    assert (ratio.good, ratio.total) == (95, 100)
    assert is_not_5xx(302) and not is_not_5xx(500) and not is_not_5xx(0)
    with pytest.raises(ValueError, match="not a number"):
        success_ratio_by_code({"ok": 1})


@pytest.mark.parametrize(("good", "total"), [(-1, 2), (3, 2), (1, -1)])
def test_impossible_counts_are_rejected(good: float, total: float) -> None:
    with pytest.raises(ValueError, match="success_ratio"):
        success_ratio(good, total)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=10**7).flatmap(
        lambda total: st.tuples(st.integers(0, total), st.just(total))
    ),
    st.sampled_from([0.9, 0.99, 0.999, 0.9999, 0.99999, 0.5, 1.0]),
)
def test_held_exactly_when_the_rational_share_reaches_the_requirement(
    counts: tuple[int, int], required: float
) -> None:
    good, total = counts
    verdict = judge_ratio(success_ratio(good, total), required=required, what="x").verdict
    expected = Fraction(good, total) >= Fraction(str(required))
    assert verdict is (Verdict.HELD if expected else Verdict.VIOLATED)
