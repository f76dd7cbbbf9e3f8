"""The cross-cluster latency verdict: decided from bucket counts, never from interpolation.

"p95 < 100 ms" is checked as "at least 95% of requests took <= 100 ms". A
histogram bucket counts observations ``<= le``, so the bound itself cannot be
told apart from values just under it: the check is therefore inclusive of the
threshold. When the threshold is a bucket bound (100 ms is one of Istio's) the
share is exact; otherwise only an interval is known and the verdict may be
inconclusive. The interpolated quantile is returned as evidence only: linear
interpolation inside a 100–250 ms bucket can put p95 on either side of the
threshold whatever the real distribution.
"""

from __future__ import annotations

import math

from meshproof.sli.compare import meets_share
from meshproof.sli.histogram import (
    Buckets,
    histogram_quantile,
    normalise_buckets,
    share_at_or_below,
)
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["judge_latency"]


def judge_latency(
    buckets: Buckets,
    *,
    threshold_ms: float,
    quantile: float,
    min_samples: int,
    what: str = "request duration",
) -> Judgement:
    """Judge "the ``quantile``-th quantile of ``buckets`` is under ``threshold_ms``".

    HELD when the share of observations ``<= threshold_ms`` is at least
    ``quantile`` (for an interval: its low end is); VIOLATED when it is below
    (for an interval: its high end is); INCONCLUSIVE when the interval straddles
    ``quantile`` or there are fewer than ``min_samples`` observations;
    NOT_MEASURABLE with no observations or no ``+Inf`` bucket.
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"judge_latency({what}): quantile must be in (0, 1], got {quantile}")
    if min_samples < 1:
        raise ValueError(f"judge_latency({what}): min_samples must be >= 1, got {min_samples}")
    label = f"p{_percent(quantile)}"
    evidence: dict[str, object] = {
        "threshold_ms": threshold_ms,
        "quantile": quantile,
        "required_share": quantile,
        "min_samples": min_samples,
    }
    norm = normalise_buckets(buckets)
    if not norm.has_inf:
        return Judgement(
            Verdict.NOT_MEASURABLE,
            f"{what}: the histogram has no +Inf bucket, so the number of requests is unknown",
            evidence,
        )
    observations = norm.observations
    evidence["observations"] = observations
    evidence["forced_monotonic"] = norm.forced_monotonic
    if observations == 0:
        return Judgement(
            Verdict.NOT_MEASURABLE, f"{what}: no requests were observed in the window", evidence
        )

    share = share_at_or_below(threshold_ms, norm.buckets)
    interpolated = histogram_quantile(quantile, norm.buckets)
    evidence.update(
        share_low=share.low,
        share_high=share.high,
        share_exact=share.exact,
        lower_edge_ms=share.lower_edge,
        upper_edge_ms=share.upper_edge,
        interpolated_ms=None if math.isnan(interpolated) else interpolated,
    )
    beside = f"interpolated {label} = {_ms(interpolated)}"
    if observations < min_samples:
        return Judgement(
            Verdict.INCONCLUSIVE,
            f"{what}: only {observations:g} requests observed, {min_samples} needed to judge "
            f"{label} < {threshold_ms:g} ms ({beside})",
            evidence,
        )

    if share.exact:
        held = meets_share(share.count_low, observations, quantile)
        verdict = Verdict.HELD if held else Verdict.VIOLATED
        return Judgement(
            verdict,
            f"{what}: {_pct(share.low)} of {observations:g} requests took <= {threshold_ms:g} ms "
            f"(exact, {threshold_ms:g} is a bucket bound); {label} needs >= {_pct(quantile)} "
            f"({beside})",
            evidence,
        )

    between = (
        f"between {_pct(share.low)} and {_pct(share.high)} of {observations:g} requests took "
        f"<= {threshold_ms:g} ms ({threshold_ms:g} lies between the bucket bounds "
        f"{share.lower_edge:g} and {share.upper_edge:g})"
    )
    if meets_share(share.count_low, observations, quantile):
        verdict = Verdict.HELD
    elif not meets_share(share.count_high, observations, quantile):
        verdict = Verdict.VIOLATED
    else:
        verdict = Verdict.INCONCLUSIVE
    return Judgement(
        verdict, f"{what}: {between}; {label} needs >= {_pct(quantile)} ({beside})", evidence
    )


def _percent(q: float) -> str:
    return f"{q * 100:g}"


def _pct(share: float) -> str:
    return f"{share * 100:.4g}%"


def _ms(value: float) -> str:
    return "undefined" if math.isnan(value) else f"{value:.4g} ms"
