"""``first_true``: the moment a condition first holds, or None when the wait runs out."""

from __future__ import annotations

import time

from meshproof.waiting import first_true


def test_first_true_returns_the_moment_the_predicate_first_holds() -> None:
    calls = iter([False, False, True])
    before = time.time()
    at = first_true(lambda: next(calls), timeout=5, interval=0.01)
    assert at is not None and before <= at <= time.time()


def test_first_true_is_none_when_the_timeout_runs_out() -> None:
    calls: list[int] = []
    assert first_true(lambda: bool(calls.append(1)), timeout=0.05, interval=0.01) is None
    assert len(calls) >= 2
