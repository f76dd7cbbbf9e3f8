"""``eventually`` and ``consistently``: the only two ways the suite waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from meshproof.errors import WaitTimeout

__all__ = ["eventually", "consistently"]

T = TypeVar("T")


def first_true(predicate: Callable[[], bool], *, timeout: float,
               interval: float) -> float | None:
    """Call ``predicate`` every ``interval`` until it is true; the wall-clock time
    (``time.time()``) it first was, or None when ``timeout`` ran out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.time()
        time.sleep(interval)
    return None


def eventually(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float,
    what: str,
) -> T:
    """Call ``check`` until it returns without raising ``AssertionError``; return its value.

    Raises ``WaitTimeout`` naming ``what`` and the last failure when ``timeout`` runs out.
    """
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while True:
        try:
            return check()
        except AssertionError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not true after {timeout:g}s (last: {last})") from last
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))


def consistently(
    check: Callable[[], object],
    *,
    duration: float,
    interval: float,
    what: str,
) -> int:
    """Call ``check`` for ``duration`` seconds; every call must pass. Returns how many calls ran.

    The first ``AssertionError`` becomes ``WaitTimeout`` naming ``what``.
    """
    deadline = time.monotonic() + duration
    calls = 0
    while True:
        try:
            check()
        except AssertionError as exc:
            raise WaitTimeout(f"{what}: stopped holding after {calls} checks ({exc})") from exc
        calls += 1
        if time.monotonic() >= deadline:
            return calls
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
