"""The load shapes, as a pure function the locustfiles' shape class calls.

- ``steady``: the peak number of users for the whole run;
- ``step``: ``step_users`` users, then ``step_users`` more every ``step_seconds``,
  until the peak is reached; it holds there until the run time ends.
"""

from __future__ import annotations

import math

__all__ = ["SHAPES", "users_at"]

SHAPES: tuple[str, ...] = ("steady", "step")


def users_at(elapsed: float, *, shape: str, peak: int, step_users: int, step_seconds: float) -> int:
    """How many users ``shape`` asks for ``elapsed`` seconds into the run."""
    if shape not in SHAPES:
        raise ValueError(f"unknown load shape {shape!r} (one of {', '.join(SHAPES)})")
    if shape == "step":
        if step_users < 1 or step_seconds <= 0:
            raise ValueError("the 'step' shape needs step_users >= 1 and step_seconds > 0")
        steps = 1 + math.floor(max(0.0, elapsed) / step_seconds)
        return min(peak, steps * step_users)
    return peak
