"""Counter increase with resets, availability of ``up``, time to recover."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshproof.sli import (
    Band,
    Verdict,
    availability,
    counter_increase,
    judge_availability,
    prometheus_increase,
    time_to_recover,
)


def test_counter_increase_counts_resets_as_new_increase() -> None:
    assert counter_increase([(0, 50), (15, 60), (30, 75), (45, 5), (60, 20)]) == 25 + 5 + 15
    assert counter_increase([(0, 5)]) is None
    assert counter_increase([]) is None


# (increment, reset before it?) steps; a reset restarts the counter from 0.
steps = st.lists(st.tuples(st.integers(0, 1000), st.booleans()), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**6), steps)
def test_counter_increase_equals_the_true_sum_of_increments(
    start: int, moves: list[tuple[int, bool]]
) -> None:
    value, true_increase = start, 0
    series = [(0.0, float(value))]
    for i, (increment, reset) in enumerate(moves, start=1):
        # A reset is only visible as a drop; one that climbs past the old value is not
        # detectable by anyone (Prometheus included), so it is not generated.
        if reset and increment < value:
            value = increment
        else:
            value += increment
        true_increase += increment
        series.append((15.0 * i, float(value)))
    assert counter_increase(series) == true_increase


def test_prometheus_increase_extrapolates_like_promql() -> None:
    samples = [(20.0, 5.0), (35.0, 9.0), (50.0, 2.0)]
    # 6 counted over 30 s of samples, extrapolated by 7.5 s (half a step) at the start
    # and by 10 s to the end: 6 * 47.5 / 30; the same value a real Prometheus 2.42 returns.
    assert prometheus_increase(samples, start=0.0, end=60.0) == pytest.approx(9.5)
    assert counter_increase(samples) == 6
    assert prometheus_increase(samples[:1], start=0.0, end=60.0) is None


def test_prometheus_increase_does_not_extrapolate_below_zero() -> None:
    # From 1 to 11 in 10 s: the counter would have been 0 one second before the first sample.
    assert prometheus_increase([(10.0, 1.0), (20.0, 11.0)], start=5.0, end=20.0) == pytest.approx(
        11.0
    )


def test_availability_is_time_weighted() -> None:
    samples = [(t, 1.0 if t < 60 else 0.0) for t in range(0, 120, 15)]
    measured = availability(samples, start=0, end=120, staleness=30)
    assert measured.up_seconds == 60 and measured.share == 0.5
    assert measured.unobserved_seconds == 0


def test_gaps_beyond_staleness_are_down() -> None:
    samples = [(0.0, 1.0), (15.0, 1.0), (100.0, 1.0)]
    measured = availability(samples, start=0, end=115, staleness=30)
    # 0-15 and 15-45 covered, 45-100 unobserved, 100-115 covered.
    assert measured.up_seconds == 60
    assert measured.unobserved_seconds == 55
    assert measured.down_seconds == 55


def test_sample_before_the_window_carries_in_and_nan_is_down() -> None:
    measured = availability([(-10.0, 1.0), (20.0, math.nan)], start=0, end=40, staleness=300)
    assert (measured.up_seconds, measured.down_seconds) == (20, 20)


def test_judge_availability() -> None:
    samples = [(float(t), 0.0 if t == 990 else 1.0) for t in range(0, 1000, 10)]
    measured = availability(samples, start=0, end=1000, staleness=15)
    assert measured.share == 0.99
    assert judge_availability(measured, required=0.99, what="istiod up").verdict is Verdict.HELD
    assert (
        judge_availability(measured, required=0.999, what="istiod up").verdict is Verdict.VIOLATED
    )
    empty = availability([], start=0, end=60)
    assert judge_availability(empty, required=0.9, what="gw up").verdict is Verdict.NOT_MEASURABLE


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=100), st.integers(1, 60))
def test_regular_samples_give_the_share_of_up_samples(values: list[float], step: int) -> None:
    samples = [(float(i * step), v) for i, v in enumerate(values)]
    measured = availability(samples, start=0, end=len(values) * step, staleness=step)
    assert measured.share == pytest.approx(values.count(1.0) / len(values))


def test_time_to_recover_needs_the_value_to_stay_in_the_band() -> None:
    series = [
        (100.0, 0.2),
        (110.0, 0.995),
        (120.0, 0.5),
        (130.0, 0.995),
        (140.0, 1.0),
        (150.0, 0.999),
    ]
    recovery = time_to_recover(series, fault_end=105, target=Band(low=0.99), hold=20)
    assert recovery is not None and recovery.recovered_at == 130 and recovery.seconds == 25
    assert time_to_recover(series, fault_end=105, target=Band(low=0.99), hold=60) is None
    immediate = time_to_recover(series, fault_end=105, target=Band(low=0.99), hold=0)
    assert immediate is not None and immediate.recovered_at == 110


def test_time_to_recover_with_a_gap_is_not_proven() -> None:
    series = [(0.0, 1.0), (10.0, 1.0), (200.0, 1.0), (210.0, 1.0)]
    assert time_to_recover(series, fault_end=0, target=Band(low=1), hold=100, max_gap=30) is None
    found = time_to_recover(series, fault_end=0, target=Band(low=1), hold=100)
    assert found is not None and found.recovered_at == 0
