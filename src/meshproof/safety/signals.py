"""Signals and rollbacks: a stop request must not skip a rollback, nor cut one short.

``interrupts_raise()`` makes SIGTERM and SIGHUP behave like Ctrl-C (raise
``KeyboardInterrupt``) inside a block, so every ``finally`` — and every
``Changes.undo`` — runs when a run is stopped. ``signals_deferred()`` is for the
rollback itself: a signal arriving meanwhile is held and raised once it is done.
Both act in the main thread only (Python delivers signals there) and do nothing
elsewhere. SIGKILL cannot be caught: what it leaves, ``meshproof recover`` undoes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["STOP_SIGNALS", "interrupts_raise", "signals_deferred"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def _handlers(handler: Any, signals: tuple[signal.Signals, ...]) -> Iterator[bool]:
    """Install ``handler`` for ``signals`` for the block; yields whether it could."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def interrupts_raise() -> Iterator[None]:
    """Inside the block SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt``."""
    with _handlers(_raise_interrupt, STOP_SIGNALS):
        yield


@contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Hold SIGINT, SIGTERM and SIGHUP for the block; after it, ``KeyboardInterrupt`` if one
    came. Yields the list of signals held so far."""
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    with _handlers(hold, STOP_SIGNALS):
        yield held
    if held:
        raise KeyboardInterrupt(f"stopped by {signal.Signals(held[0]).name} "
                                "(after the rollback finished)")
