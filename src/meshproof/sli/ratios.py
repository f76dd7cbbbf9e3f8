"""Success ratios (requests, TLS handshakes) and their verdicts.

A ratio with no denominator is "not measurable", never 100%: a window without
traffic proves nothing about the traffic that did not happen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from meshproof.sli.compare import meets_share
from meshproof.sli.verdict import Judgement, Verdict

__all__ = [
    "Ratio",
    "handshake_success_ratio",
    "is_not_5xx",
    "judge_ratio",
    "success_ratio",
    "success_ratio_by_code",
]


@dataclass(frozen=True, slots=True)
class Ratio:
    """``good`` out of ``total`` events."""

    good: float
    """Events that met the objective (successful requests, completed handshakes)."""
    total: float
    """All events counted."""

    @property
    def measurable(self) -> bool:
        """False when nothing was counted."""
        return self.total > 0

    @property
    def value(self) -> float | None:
        """``good / total``, or None when nothing was counted."""
        return self.good / self.total if self.total > 0 else None

    @property
    def bad(self) -> float:
        """``total - good``."""
        return self.total - self.good


def success_ratio(successes: float, total: float) -> Ratio:
    """The ratio of ``successes`` to ``total``; both are counts, ``0 <= successes <= total``."""
    if total < 0 or successes < 0 or successes > total:
        raise ValueError(f"success_ratio: need 0 <= successes <= total, got {successes} of {total}")
    return Ratio(good=successes, total=total)


def handshake_success_ratio(handshakes: float, failures: float) -> Ratio:
    """The TLS handshake success ratio from Envoy's listener counters.

    ``handshakes`` is ``ssl.handshake`` (completed handshakes) and ``failures`` is
    ``ssl.connection_error`` (handshakes that failed), both increases over the window.
    """
    if handshakes < 0 or failures < 0:
        raise ValueError(
            f"handshake_success_ratio: counts must be >= 0, got {handshakes} handshakes, "
            f"{failures} failures"
        )
    return Ratio(good=handshakes, total=handshakes + failures)


def is_not_5xx(code: int) -> bool:
    """Istio's usual success criterion: any response that is not a 5xx (0 = no response is a failure)."""
    return 0 < code < 500 or code >= 600


def success_ratio_by_code(
    counts: Mapping[int | str, float], *, is_success: Callable[[int], bool] = is_not_5xx
) -> Ratio:
    """A success ratio from per-response-code counts (``response_code`` label values)."""
    good = 0.0
    total = 0.0
    for code, count in counts.items():
        try:
            numeric = int(code)
        except ValueError as exc:
            raise ValueError(
                f"success_ratio_by_code: response code {code!r} is not a number"
            ) from exc
        total += count
        if is_success(numeric):
            good += count
    return success_ratio(good, total)


def judge_ratio(ratio: Ratio, *, required: float, what: str, min_total: float = 1) -> Judgement:
    """HELD if ``ratio`` is at least ``required`` (compared exactly), else VIOLATED.

    NOT_MEASURABLE with nothing counted; INCONCLUSIVE with fewer than ``min_total`` events.
    """
    evidence: dict[str, object] = {
        "good": ratio.good,
        "total": ratio.total,
        "ratio": ratio.value,
        "required": required,
    }
    if not ratio.measurable:
        return Judgement(
            Verdict.NOT_MEASURABLE, f"{what}: nothing was counted in the window", evidence
        )
    counted = f"{ratio.good:g} of {ratio.total:g} ({ratio.good / ratio.total * 100:.6g}%)"
    if ratio.total < min_total:
        return Judgement(
            Verdict.INCONCLUSIVE,
            f"{what}: only {ratio.total:g} events counted, {min_total:g} needed ({counted})",
            evidence,
        )
    if meets_share(ratio.good, ratio.total, required):
        return Judgement(Verdict.HELD, f"{what}: {counted} >= {required * 100:g}%", evidence)
    return Judgement(Verdict.VIOLATED, f"{what}: {counted} < {required * 100:g}%", evidence)
