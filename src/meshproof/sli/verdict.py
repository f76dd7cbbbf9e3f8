"""The verdict every SLI judgement ends in, shared by the whole suite.

Kept deliberately small and stable: features, experiments and reports import
``Verdict`` and ``Judgement`` from here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Judgement", "Verdict"]


class Verdict(enum.StrEnum):
    """The outcome of checking one guarantee against one measurement."""

    HELD = "held"
    """The measurement shows the guarantee was kept."""
    VIOLATED = "violated"
    """The measurement shows the guarantee was broken."""
    INCONCLUSIVE = "inconclusive"
    """There is data, but not enough (or not precise enough) to decide either way."""
    NOT_MEASURABLE = "not_measurable"
    """There is nothing to measure (no traffic, no series, no +Inf bucket): never "held"."""


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict with the sentence that explains it and the numbers behind it."""

    verdict: Verdict
    """What was decided."""
    reason: str
    """One sentence a person reads in the report, naming the numbers that decided it."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """The measured values (JSON-serialisable scalars) the verdict was decided from."""

    @property
    def held(self) -> bool:
        """True only for ``Verdict.HELD``."""
        return self.verdict is Verdict.HELD
