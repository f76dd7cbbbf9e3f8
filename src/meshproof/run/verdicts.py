"""How a scenario's outcome becomes a verdict, and how verdicts add up per guarantee.

Steps end a check in one of four ways, and the runner maps each to a verdict:

::

    the scenario passed                        -> HELD
    AssertionError / GuaranteeViolated         -> VIOLATED
    NotMeasurable (a pytest skip)              -> NOT_MEASURABLE, with the reason and a fix
    any other exception                        -> NOT_MEASURABLE, and the run is faulty (exit 2)

``require(judgement)`` turns an SLI ``Judgement`` into the matching outcome, so a
step can end with one call. Inconclusive measurements are never "held": they
count as not measurable.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import pytest

from meshproof.sli.verdict import Judgement, Verdict

__all__ = [
    "GuaranteeViolated",
    "NotMeasurable",
    "Outcome",
    "aggregate",
    "require",
    "verdict_of",
]


class GuaranteeViolated(AssertionError):
    """A measurement showed a guarantee broken; carries the judgement that decided it."""

    def __init__(self, judgement: Judgement, *, cluster: str | None = None) -> None:
        where = f" [{cluster}]" if cluster else ""
        super().__init__(f"{judgement.reason}{where}")
        self.judgement = judgement
        self.cluster = cluster


class NotMeasurable(pytest.skip.Exception):  # type: ignore[name-defined]
    """The check cannot be made on this target; ``reason`` says why, ``fix`` how to make it so.

    A pytest skip, so a plain ``pytest`` run shows it as skipped with its reason;
    the runner reports it as "not measurable", never "held".
    """

    def __init__(self, reason: str, *, fix: str = "", cluster: str | None = None) -> None:
        where = f" [{cluster}]" if cluster else ""
        text = f"{reason}{where}" + (f" (fix: {fix})" if fix else "")
        super().__init__(msg=text, pytrace=False, allow_module_level=False)
        self.reason = reason
        self.fix = fix
        self.cluster = cluster


class Outcome(enum.StrEnum):
    """How one scenario ended, as the results file records it."""

    PASSED = "passed"
    VIOLATED = "violated"
    NOT_MEASURABLE = "not_measurable"
    ERROR = "error"
    """The check itself could not run (an unexpected exception): the run is faulty."""


def verdict_of(outcome: Outcome) -> Verdict:
    """The verdict a scenario outcome stands for (an error is not measurable)."""
    if outcome is Outcome.PASSED:
        return Verdict.HELD
    if outcome is Outcome.VIOLATED:
        return Verdict.VIOLATED
    return Verdict.NOT_MEASURABLE


def aggregate(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict from several (clusters, scenarios): any violated wins; held needs all held.

    No verdict at all is not measurable, never held; inconclusive counts as not measurable.
    """
    seen = list(verdicts)
    if any(v is Verdict.VIOLATED for v in seen):
        return Verdict.VIOLATED
    if seen and all(v is Verdict.HELD for v in seen):
        return Verdict.HELD
    return Verdict.NOT_MEASURABLE


# Generic fixes, used when a step does not give a more precise one.
_FIX_INCONCLUSIVE = "lengthen the window or add load so the measurement can decide"
_FIX_NOT_MEASURABLE = "make sure the target exports what this guarantee is measured from"


def require(
    judgement: Judgement, *, cluster: str | None = None, fix: str | None = None
) -> Judgement:
    """Return ``judgement`` if it held; otherwise raise the outcome it stands for.

    VIOLATED raises ``GuaranteeViolated``; INCONCLUSIVE and NOT_MEASURABLE raise
    ``NotMeasurable`` with ``fix`` (or a generic one).
    """
    if judgement.verdict is Verdict.HELD:
        return judgement
    if judgement.verdict is Verdict.VIOLATED:
        raise GuaranteeViolated(judgement, cluster=cluster)
    default = (
        _FIX_INCONCLUSIVE if judgement.verdict is Verdict.INCONCLUSIVE else _FIX_NOT_MEASURABLE
    )
    raise NotMeasurable(judgement.reason, fix=fix or default, cluster=cluster)
