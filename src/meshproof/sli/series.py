"""Time series arithmetic: counter increases, availability of ``up``, time to recover.

A series is a sequence of ``(unix_seconds, value)`` samples in time order, as
Prometheus's range queries return them.

Counter increase, two ways:

- ``counter_increase`` is what actually happened between the first and the last
  sample: the sum of the rises, where a drop is a counter reset (the process
  restarted from zero) and the value after it is all new increase. Prometheus
  detects resets the same way.
- ``prometheus_increase`` is what PromQL ``increase(x[range])`` returns
  (``extrapolatedRate`` in prometheus/prometheus ``promql/functions.go``, 2.x):
  the same reset-corrected rise, scaled up from the span the samples cover to
  the whole range (up to half a scrape interval at each edge, or to the edge if
  a sample lies within 1.1 intervals of it, never before the counter's extrapolated
  zero). It is therefore usually not an integer, and larger than
  ``counter_increase``; use it only to compare with PromQL results. This is
  Prometheus 2.x (checked against 2.42 by the test suite); Prometheus 3 drops a
  sample lying exactly on the range start (left-open ranges).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from meshproof.sli.compare import meets_share
from meshproof.sli.verdict import Judgement, Verdict

__all__ = [
    "Availability",
    "Band",
    "Recovery",
    "Sample",
    "availability",
    "counter_increase",
    "judge_availability",
    "prometheus_increase",
    "time_to_recover",
]

Sample = tuple[float, float]
"""``(unix_seconds, value)``."""

DEFAULT_STALENESS = 300.0
"""Seconds a sample stays valid with no successor: Prometheus's default lookback delta (5 m)."""


def counter_increase(samples: Sequence[Sample]) -> float | None:
    """The increase of a counter from its first to its last sample, counting resets.

    A sample lower than its predecessor is a reset: its whole value is increase.
    None with fewer than two samples (nothing can be said about a rise).
    """
    if len(samples) < 2:
        return None
    total = 0.0
    previous = samples[0][1]
    for _, value in samples[1:]:
        total += value if value < previous else value - previous
        previous = value
    return total


def prometheus_increase(samples: Sequence[Sample], *, start: float, end: float) -> float | None:
    """PromQL's ``increase()`` over the range ``[start, end]`` (see the module docstring).

    Only samples with ``start <= t <= end`` count (Prometheus 2.x closed range).
    None with fewer than two of them, as Prometheus returns no result then.
    """
    inside = [(t, v) for t, v in samples if start <= t <= end]
    if len(inside) < 2:
        return None
    # Prometheus starts its running value at 0, so only a drop *between* samples is a reset.
    correction = 0.0
    last = 0.0
    for _, value in inside:
        if value < last:
            correction += last
        last = value
    first_t, first_v = inside[0]
    last_t = inside[-1][0]
    result = last - first_v + correction

    to_start = first_t - start
    to_end = end - last_t
    sampled = last_t - first_t
    average_step = sampled / (len(inside) - 1)
    if result > 0 and first_v >= 0:
        # A counter cannot have been below zero: do not extrapolate past its zero point.
        to_zero = sampled * (first_v / result)
        to_start = min(to_start, to_zero)
    threshold = average_step * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average_step / 2
    interval += to_end if to_end < threshold else average_step / 2
    return result * (interval / sampled)


@dataclass(frozen=True, slots=True)
class Availability:
    """How much of a window an ``up``-style series was 1."""

    start: float
    """Window start (unix seconds)."""
    end: float
    """Window end (unix seconds)."""
    up_seconds: float
    """Time covered by a sample equal to 1."""
    down_seconds: float
    """Time covered by a sample other than 1 (0, NaN stale markers, anything else)."""
    unobserved_seconds: float
    """Time no sample covered (before the first, or beyond ``staleness`` after one); counted as down."""
    staleness: float
    """How long a sample was taken to hold when no later sample followed."""

    @property
    def share(self) -> float:
        """``up_seconds`` over the window length."""
        return self.up_seconds / (self.end - self.start)


def availability(
    samples: Sequence[Sample], *, start: float, end: float, staleness: float = DEFAULT_STALENESS
) -> Availability:
    """The time-weighted share of ``[start, end]`` during which the series was exactly 1.

    Each sample holds from its timestamp until the next sample, but at most
    ``staleness`` seconds; time no sample holds is unobserved and counted as down
    (a target that stopped being scraped is not proven up). The last sample at
    or before ``start`` carries into the window.
    """
    if not end > start:
        raise ValueError(f"availability: the window must have end > start, got [{start}, {end}]")
    if staleness <= 0:
        raise ValueError(f"availability: staleness must be > 0, got {staleness}")
    ordered = sorted(samples, key=lambda s: s[0])
    up = down = 0.0
    for i, (t, value) in enumerate(ordered):
        holds_until = t + staleness
        if i + 1 < len(ordered):
            holds_until = min(holds_until, ordered[i + 1][0])
        lo, hi = max(t, start), min(holds_until, end)
        if hi <= lo:
            continue
        if value == 1:
            up += hi - lo
        else:
            down += hi - lo
    unobserved = max(0.0, (end - start) - up - down)
    return Availability(start, end, up, down + unobserved, unobserved, staleness)


def judge_availability(measured: Availability, *, required: float, what: str) -> Judgement:
    """HELD if the series was up for at least ``required`` of the window, else VIOLATED.

    NOT_MEASURABLE when no sample covers any of the window.
    """
    window = measured.end - measured.start
    evidence: dict[str, object] = {
        "window_seconds": window,
        "up_seconds": measured.up_seconds,
        "down_seconds": measured.down_seconds,
        "unobserved_seconds": measured.unobserved_seconds,
        "staleness_seconds": measured.staleness,
        "availability": measured.share,
        "required": required,
    }
    if measured.unobserved_seconds >= window:
        return Judgement(
            Verdict.NOT_MEASURABLE, f"{what}: no sample in the {window:g} s window", evidence
        )
    text = (
        f"{what}: up {measured.share * 100:.6g}% of {window:g} s "
        f"({measured.down_seconds:g} s down, of which {measured.unobserved_seconds:g} s without samples)"
    )
    if meets_share(measured.up_seconds, window, required):
        return Judgement(Verdict.HELD, f"{text} >= {required * 100:g}%", evidence)
    return Judgement(Verdict.VIOLATED, f"{text} < {required * 100:g}%", evidence)


@dataclass(frozen=True, slots=True)
class Band:
    """A closed range of acceptable values, e.g. a success ratio ``Band(low=0.99)``."""

    low: float = -math.inf
    """Smallest acceptable value."""
    high: float = math.inf
    """Largest acceptable value."""

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Recovery:
    """When a series came back within its target after a fault ended."""

    fault_end: float
    """When the fault was removed (unix seconds)."""
    recovered_at: float
    """The first sample from which the series stayed within the target for the hold time."""

    @property
    def seconds(self) -> float:
        """Time to recover: ``recovered_at - fault_end``."""
        return self.recovered_at - self.fault_end


def time_to_recover(
    samples: Sequence[Sample],
    *,
    fault_end: float,
    target: Band,
    hold: float,
    max_gap: float | None = None,
) -> Recovery | None:
    """The first time at or after ``fault_end`` that the series is in ``target`` and stays there.

    "Stays" means every sample from that time up to at least ``hold`` seconds later is
    in ``target``; with ``max_gap``, two consecutive samples further apart than it
    also break the run (no data is no proof). None if the series never recovers
    within the samples given.
    """
    if hold < 0:
        raise ValueError(f"time_to_recover: hold must be >= 0, got {hold}")
    run_start: float | None = None
    previous_t: float | None = None
    for t, value in sorted(samples, key=lambda s: s[0]):
        if t < fault_end:
            continue
        gap_broken = max_gap is not None and previous_t is not None and t - previous_t > max_gap
        previous_t = t
        if value not in target:
            run_start = None
            continue
        if run_start is None or gap_broken:
            run_start = t
        if t - run_start >= hold:
            return Recovery(fault_end=fault_end, recovered_at=run_start)
    return None
