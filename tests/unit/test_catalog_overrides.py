"""Properties of threshold overrides, over every threshold of every guarantee.

Whatever the value: at least as strict as the catalog's → accepted without a
reason and never marked loosened; looser → refused without a reason, accepted
and marked loosened (with the reason) when one is given.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from meshproof.catalog import (
    OverrideRejected,
    ThresholdOverride,
    load_catalog,
    threshold_direction,
)

CATALOG = load_catalog()
FIELDS = [
    (g.id, name, value)
    for g in CATALOG
    for name, value in [*g.thresholds.items(), ("window_s", g.window_s)]
]


def _bounds(name: str) -> tuple[float, float]:
    if name == "quantile":
        return 0.001, 0.999
    if name.endswith("_ratio"):
        return 0.0, 1.0
    return 0.0, 1e9


def _candidate(draw: st.DrawFn, name: str, current: float, stricter: bool) -> float | int | None:
    low, high = _bounds(name)
    higher_is_stricter = threshold_direction(name) == "higher"
    want_higher = stricter == higher_is_stricter
    lo, hi = (current, high) if want_higher else (low, current)
    if name == "window_s":
        lo, hi = max(lo, 1), max(hi, 1)
        if not stricter:
            hi = current - 1
        if hi < lo:
            return None
        return draw(st.integers(min_value=int(lo), max_value=int(min(hi, 10**7))))
    value = draw(st.floats(min_value=lo, max_value=hi, allow_nan=False))
    if not stricter and value == current:
        return None
    if name == "quantile" and not 0 < value < 1:
        return None
    return value


@st.composite
def overrides(draw: st.DrawFn, stricter: bool) -> tuple[str, str, float | int] | None:
    gid, name, current = draw(st.sampled_from(FIELDS))
    value = _candidate(draw, name, current, stricter)
    return None if value is None else (gid, name, value)


@settings(max_examples=300, deadline=None)
@given(overrides(stricter=True))
def test_tightening_or_equal_is_accepted_without_reason(case: tuple[str, str, float] | None) -> None:
    assume(case is not None)
    assert case is not None
    gid, name, value = case
    eff = CATALOG.effective_thresholds(gid, {gid: ThresholdOverride(values={name: value})})
    assert eff.loosened == ()
    assert (eff.window_s if name == "window_s" else eff[name]) == value


@settings(max_examples=300, deadline=None)
@given(overrides(stricter=False))
def test_loosening_needs_a_reason_and_is_marked(case: tuple[str, str, float] | None) -> None:
    assume(case is not None)
    assert case is not None
    gid, name, value = case
    with pytest.raises(OverrideRejected, match="loosens"):
        CATALOG.effective_thresholds(gid, {gid: ThresholdOverride(values={name: value})})
    eff = CATALOG.effective_thresholds(
        gid, {gid: ThresholdOverride(values={name: value}, reason="lab is slower")}
    )
    (change,) = eff.loosened
    assert change.name == name and change.reason == "lab is slower"
