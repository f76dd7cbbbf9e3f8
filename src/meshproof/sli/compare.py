"""Exact comparison of a counted share against a required share."""

from __future__ import annotations

from fractions import Fraction

__all__ = ["meets_share"]


def meets_share(count: float, total: float, required: float) -> bool:
    """``count / total >= required``, compared exactly, for ``total > 0``.

    ``required`` is read as the decimal it is written as (0.95 means 19/20, not
    the binary double just below it), so 95 of 100 meets 0.95 and 9999 of 10000
    meets 0.9999; float division would get either wrong for some totals.
    """
    return Fraction(count) >= Fraction(repr(required)) * Fraction(total)
