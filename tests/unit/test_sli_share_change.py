"""The one-sided two-proportion test behind `meshproof compare`."""

from __future__ import annotations

import math

import pytest

from meshproof.sli.compare import worse_share_test


def test_equal_shares_are_not_worse() -> None:
    change = worse_share_test(100, 100, 100, 100)
    assert change.p_value == 1.0
    assert not change.worse(0.01)


def test_a_large_drop_over_many_requests_is_worse() -> None:
    change = worse_share_test(1900, 2000, 1000, 2000)
    assert change.method == "two-proportion z"
    assert change.p_value < 1e-100
    assert change.worse(0.01)


def test_the_z_test_matches_the_textbook_formula() -> None:
    change = worse_share_test(990, 1000, 980, 1000)
    pooled = 1970 / 2000
    z = (0.98 - 0.99) / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert change.p_value == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)), rel=1e-12)
    assert change.worse(0.05) and not change.worse(0.01)


def test_the_same_drop_over_few_requests_is_not_a_regression() -> None:
    # 99.5% -> 99% is noise over a few hundred requests, a regression over a million.
    few = worse_share_test(199, 200, 99, 100)
    many = worse_share_test(995_000, 1_000_000, 990_000, 1_000_000)
    assert not few.worse(0.01)
    assert many.worse(0.01)


def test_small_counts_use_fishers_exact_test() -> None:
    change = worse_share_test(10, 10, 7, 10)
    assert change.method == "fisher exact"
    # P(all 3 failures land in the current run's 10 of 20 events) = C(17,7) / C(20,10).
    assert change.p_value == pytest.approx(math.comb(17, 7) / math.comb(20, 10), rel=1e-9)


def test_an_improvement_is_never_worse() -> None:
    change = worse_share_test(900, 1000, 990, 1000)
    assert change.p_value > 0.5
    assert not change.worse(0.5)


def test_fractional_counts_from_prometheus_are_accepted() -> None:
    change = worse_share_test(1250.7, 1329.41, 1191.0, 2517.34)
    assert change.worse(0.01)


@pytest.mark.parametrize("args", [(5, 0, 1, 1), (6, 5, 1, 1), (1, 1, -1, 1)])
def test_impossible_counts_are_refused(args: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError, match="worse_share_test"):
        worse_share_test(*args)
