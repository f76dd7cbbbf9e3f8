"""The exact binomial split test, its power and sample size, against brute-force sums."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshproof.sli import (
    Judgement,
    Verdict,
    binomial_test,
    judge_exclusive_routing,
    judge_split,
    min_sample_size,
    rejection_power,
    split_test,
)

TIE = Fraction(1) + Fraction(1, 10**7)


def _exact_pmf(k: int, n: int, p: Fraction) -> Fraction:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def _exact_p_value(k: int, n: int, p: Fraction) -> Fraction:
    observed = _exact_pmf(k, n, p)
    return sum(
        (pmf for pmf in (_exact_pmf(i, n, p) for i in range(n + 1)) if pmf <= observed * TIE),
        Fraction(0),
    )


def _float_pmf(k: int, n: int, p: float) -> float:
    return math.comb(n, k) * p**k * (1 - p) ** (n - k)


def _brute_power(n: int, p0: float, p1: float, alpha: float) -> float:
    pmf0 = [_float_pmf(i, n, p0) for i in range(n + 1)]
    rejected = [
        k for k in range(n + 1) if sum(v for v in pmf0 if v <= pmf0[k] * (1 + 1e-7)) <= alpha
    ]
    return sum(_float_pmf(k, n, p1) for k in rejected)


def test_known_p_values() -> None:
    assert binomial_test(3, 10, 0.5) == pytest.approx(0.34375, rel=1e-12)
    assert binomial_test(5, 10, 0.5) == pytest.approx(1.0)
    assert binomial_test(0, 0, 0.3) == 1.0
    assert binomial_test(1, 10, 0.0) == 0.0
    assert binomial_test(10, 10, 1.0) == 1.0


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=25).flatmap(
        lambda n: st.tuples(st.integers(0, n), st.just(n))
    ),
    st.sampled_from(["0.1", "0.25", "0.5", "0.9", "0.05", "0.999", "0.333"]),
)
def test_p_value_equals_the_brute_force_sum(case: tuple[int, int], p0: str) -> None:
    k, n = case
    expected = float(_exact_p_value(k, n, Fraction(p0)))
    assert binomial_test(k, n, float(p0)) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 60),
    st.floats(0.02, 0.98),
    st.floats(0.0, 1.0),
    st.sampled_from([0.01, 0.05, 0.1]),
)
def test_power_equals_the_brute_force_rejection_mass(
    n: int, p0: float, p1: float, alpha: float
) -> None:
    assert rejection_power(n, p0, p1, alpha) == pytest.approx(
        _brute_power(n, p0, p1, alpha), abs=1e-9
    )


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 400), st.floats(0.01, 0.99), st.sampled_from([0.01, 0.05, 0.1]))
def test_false_alarm_rate_is_at_most_alpha(n: int, p0: float, alpha: float) -> None:
    assert rejection_power(n, p0, p0, alpha) <= alpha + 1e-12


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]),
    st.sampled_from([0.2, 0.3, 0.4]),
    st.sampled_from([0.05, 0.1]),
    st.sampled_from([0.5, 0.8]),
)
def test_min_sample_size_is_minimal(
    p0: float, tolerance: float, alpha: float, power: float
) -> None:
    n = min_sample_size(p0, tolerance, alpha, power)
    alternatives = [p for p in (p0 - tolerance, p0 + tolerance) if 0 <= p <= 1]

    def reaches(m: int) -> bool:
        # Exact ties with the target power (3 of 0.5) count as reached on both sides.
        return all(_brute_power(m, p0, p1, alpha) >= power - 1e-12 for p1 in alternatives)

    assert reaches(n)
    assert not any(reaches(m) for m in range(1, n))


def test_min_sample_size_for_the_runbook_split() -> None:
    n = min_sample_size(0.9, 0.05, 0.01, 0.9)
    assert 400 < n < 800
    assert rejection_power(n, 0.9, 0.85, 0.01) >= 0.9
    assert rejection_power(n, 0.9, 0.95, 0.01) >= 0.9
    with pytest.raises(ValueError, match="tolerance"):
        min_sample_size(0.9, 0.0, 0.01, 0.9)


def _judge_90_10(v1: int, v2: int) -> Judgement:
    counts = {name: c for name, c in (("v1", v1), ("v2", v2)) if c}
    return judge_split(
        counts,
        {"v1": 90, "v2": 10},
        alpha=0.01,
        tolerance=0.05,
        power=0.9,
        what="ROUTING split",
    )


def test_split_90_10() -> None:
    held = _judge_90_10(890, 110)
    assert held.verdict is Verdict.HELD and held.evidence["p_value"] > 0.01
    violated = _judge_90_10(800, 200)
    assert violated.verdict is Verdict.VIOLATED and "rejects" in violated.reason
    small = _judge_90_10(45, 5)
    assert small.verdict is Verdict.INCONCLUSIVE and "needed" in small.reason
    assert _judge_90_10(0, 0).verdict is Verdict.NOT_MEASURABLE


def test_split_with_three_subsets_and_an_unweighted_one() -> None:
    weights = {"a": 50, "b": 30, "c": 20}
    assert not split_test({"a": 500, "b": 300, "c": 200}, weights, alpha=0.01).rejected
    assert split_test({"a": 700, "b": 200, "c": 100}, weights, alpha=0.01).rejected
    stray = split_test({"v1": 900, "v2": 99, "v3": 1}, {"v1": 90, "v2": 10}, alpha=0.01)
    assert stray.rejected and stray.p_value == 0.0


def test_canary_header_must_go_only_to_v2() -> None:
    assert (
        judge_exclusive_routing({"v2": 200}, expected="v2", what="canary").verdict is Verdict.HELD
    )
    leak = judge_exclusive_routing({"v2": 199, "v1": 1}, expected="v2", what="canary")
    assert leak.verdict is Verdict.VIOLATED and "1 to v1" in leak.reason
    assert (
        judge_exclusive_routing({}, expected="v2", what="canary").verdict is Verdict.NOT_MEASURABLE
    )
    few = judge_exclusive_routing({"v2": 3}, expected="v2", what="canary", min_total=50)
    assert few.verdict is Verdict.INCONCLUSIVE
