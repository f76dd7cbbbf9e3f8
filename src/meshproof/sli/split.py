"""Weighted routing, judged by an exact binomial test instead of a fixed band.

"90/10" is a claim about the probability a request goes to each subset; the
counts of one run scatter around it. The exact two-sided binomial test asks how
surprising the counts are if the weights were right (the p-value) and rejects
at a stated false-alarm rate ``alpha``. ``min_sample_size`` says how many
requests a run needs so that a real drift of ``tolerance`` is caught with the
stated ``power``; fewer requests and an accepted test mean "inconclusive", not
"held".

The p-value is the "method of small p-values" of R's ``binom.test`` and SciPy's
``binomtest`` (scipy/scipy ``scipy/stats/_binomtest.py``): the probability,
under the weights, of every outcome no more likely than the observed one, with
a relative tolerance of 1e-7 so that float noise does not split ties.
Stdlib only: log-space pmf from ``math.lgamma``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from meshproof.sli.verdict import Judgement, Verdict

__all__ = [
    "SplitTest",
    "binomial_test",
    "judge_exclusive_routing",
    "judge_split",
    "min_sample_size",
    "rejection_power",
    "split_test",
]

_TIE_RTOL = 1e-7
_MAX_SAMPLE_SIZE = 10_000_000
# Float sums cannot tell a power of exactly 0.5 from 0.49999999999999967; such ties count as reached.
_POWER_SLACK = 1e-12


def _log_pmf(k: int, n: int, p: float) -> float:
    """log P(X = k) for X ~ Binomial(n, p); -inf for impossible outcomes."""
    if p == 0.0:
        return 0.0 if k == 0 else -math.inf
    if p == 1.0:
        return 0.0 if k == n else -math.inf
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def _check_probability(name: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


def binomial_test(k: int, n: int, p0: float) -> float:
    """The exact two-sided p-value of ``k`` successes in ``n`` trials if the success probability is ``p0``."""
    _check_probability("binomial_test: p0", p0)
    if not 0 <= k <= n:
        raise ValueError(f"binomial_test: need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 1.0
    observed = _log_pmf(k, n, p0)
    if observed == -math.inf:
        return 0.0
    cutoff = observed + math.log1p(_TIE_RTOL)
    terms = [lp for lp in (_log_pmf(i, n, p0) for i in range(n + 1)) if lp <= cutoff]
    peak = max(terms)
    return min(1.0, math.exp(peak) * math.fsum(math.exp(lp - peak) for lp in terms))


def _acceptance_interval(n: int, p0: float, alpha: float) -> tuple[int, int]:
    """The outcomes ``[a, b]`` whose p-value exceeds ``alpha`` (empty when ``a > b``).

    The pmf is unimodal, so visiting outcomes from the mode outwards in order of
    decreasing probability makes each p-value one minus the mass already visited;
    the walk stops at the first outcome with p-value <= alpha. Cost: the width of
    the interval, not ``n``.
    """
    mode = min(n, max(0, math.floor((n + 1) * p0)))
    lo, hi = mode - 1, mode + 1
    order_values: list[float] = []  # pmf of visited outcomes, decreasing
    prefix: list[float] = [0.0]  # prefix[j] = sum of order_values[:j]
    greater = 0  # order_values[:greater] are > current pmf * (1 + tol)
    a, b = mode, mode - 1
    candidate, value = mode, math.exp(_log_pmf(mode, n, p0))
    lo_value = math.exp(_log_pmf(lo, n, p0)) if lo >= 0 else -1.0
    hi_value = math.exp(_log_pmf(hi, n, p0)) if hi <= n else -1.0
    while True:
        while greater < len(order_values) and order_values[greater] > value * (1 + _TIE_RTOL):
            greater += 1
        if 1.0 - prefix[greater] <= alpha:
            return a, b
        order_values.append(value)
        prefix.append(prefix[-1] + value)
        a, b = min(a, candidate), max(b, candidate)
        if lo_value < 0 and hi_value < 0:
            return a, b
        if lo_value >= hi_value:
            candidate, value = lo, lo_value
            lo -= 1
            lo_value = math.exp(_log_pmf(lo, n, p0)) if lo >= 0 else -1.0
        else:
            candidate, value = hi, hi_value
            hi += 1
            hi_value = math.exp(_log_pmf(hi, n, p0)) if hi <= n else -1.0


def rejection_power(n: int, p0: float, p1: float, alpha: float) -> float:
    """The probability that ``binomial_test`` at level ``alpha`` rejects ``p0`` when the truth is ``p1``."""
    _check_probability("rejection_power: p0", p0)
    _check_probability("rejection_power: p1", p1)
    a, b = _acceptance_interval(n, p0, alpha)
    accepted = math.fsum(math.exp(_log_pmf(k, n, p1)) for k in range(a, b + 1))
    return max(0.0, 1.0 - accepted)


def _sample_size_lower_bound(p0: float, p1: float, alpha: float, power: float) -> int:
    """A provable lower bound on n for ``rejection_power(n, p0, p1, alpha) >= power``.

    Any level-``alpha`` test has power at most ``alpha + TV(P0^n, P1^n)``, and the
    total variation distance is at most ``sqrt(1 - BC^(2n))`` where BC is the
    Bhattacharyya coefficient of one trial (Le Cam's inequality). Scanning up
    from here keeps the answer the smallest n while skipping hopeless sizes.
    """
    gap = power - alpha
    bc = math.sqrt(p0 * p1) + math.sqrt((1 - p0) * (1 - p1))
    if gap <= 0 or bc <= 0:
        return 1
    if bc >= 1:
        return _MAX_SAMPLE_SIZE
    bound = math.log1p(-gap * gap) / (2 * math.log(bc))
    return max(1, math.floor(bound))


def min_sample_size(p0: float, tolerance: float, alpha: float, power: float) -> int:
    """The smallest n for which a true share of ``p0 ± tolerance`` is rejected with probability ``>= power``.

    Both directions that stay inside [0, 1] must reach ``power`` (within 1e-12, so that
    exact ties are not lost to rounding). Exact binomial
    power is not monotone in n (it saw-tooths), so a larger n may fall just short
    again; this returns the first n that reaches it.
    """
    _check_probability("min_sample_size: p0", p0)
    if not 0 < tolerance <= 1:
        raise ValueError(f"min_sample_size: tolerance must be in (0, 1], got {tolerance}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(
            f"min_sample_size: alpha and power must be in (0, 1), got {alpha}, {power}"
        )
    alternatives = [p for p in (p0 - tolerance, p0 + tolerance) if 0.0 <= p <= 1.0]
    if not alternatives:
        raise ValueError(f"min_sample_size: p0={p0} ± {tolerance} leaves [0, 1] on both sides")
    n = max(_sample_size_lower_bound(p0, p1, alpha, power) for p1 in alternatives)
    while n <= _MAX_SAMPLE_SIZE:
        if all(rejection_power(n, p0, p1, alpha) >= power - _POWER_SLACK for p1 in alternatives):
            return n
        n += 1
    raise ValueError(
        f"min_sample_size: more than {_MAX_SAMPLE_SIZE} samples needed for p0={p0}, "
        f"tolerance={tolerance}, alpha={alpha}, power={power}"
    )


@dataclass(frozen=True, slots=True)
class SplitTest:
    """The outcome of testing observed counts against routing weights."""

    counts: dict[str, int]
    """Requests observed per subset (every weighted subset present, 0 if unseen)."""
    expected: dict[str, float]
    """Expected share per subset (weights normalised to sum to 1)."""
    n: int
    """All requests counted."""
    p_value: float
    """Exact two-sided p-value (Bonferroni-adjusted over subsets when there are more than two)."""
    alpha: float
    """The false-alarm rate the test was run at."""
    rejected: bool = field(init=False)
    """``p_value <= alpha``: the counts are not consistent with the weights."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rejected", self.n > 0 and self.p_value <= self.alpha)

    @property
    def observed(self) -> dict[str, float]:
        """Observed share per subset (empty when nothing was counted)."""
        return {k: c / self.n for k, c in self.counts.items()} if self.n else {}


def _normalise_weights(
    counts: Mapping[str, int], weights: Mapping[str, float]
) -> tuple[dict[str, int], dict[str, float]]:
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"split weights must be >= 0 and not all 0, got {dict(weights)}")
    if any(c < 0 for c in counts.values()):
        raise ValueError(f"split counts must be >= 0, got {dict(counts)}")
    names = sorted(set(weights) | set(counts))
    total_weight = sum(weights.values())
    expected = {name: weights.get(name, 0.0) / total_weight for name in names}
    return {name: int(counts.get(name, 0)) for name in names}, expected


def split_test(
    counts: Mapping[str, int], weights: Mapping[str, float], *, alpha: float
) -> SplitTest:
    """Test observed per-subset ``counts`` against routing ``weights`` (e.g. ``{"v1": 90, "v2": 10}``).

    Two subsets: one exact binomial test. More: one test per subset against the
    rest, Bonferroni-adjusted, so the false-alarm rate stays at most ``alpha``.
    A subset with weight 0 that received traffic gives p-value 0.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"split_test: alpha must be in (0, 1), got {alpha}")
    observed, expected = _normalise_weights(counts, weights)
    n = sum(observed.values())
    names = list(observed)
    if n == 0:
        p_value = 1.0
    elif len(names) <= 2:
        first = names[0]
        p_value = binomial_test(observed[first], n, expected[first])
    else:
        smallest = min(binomial_test(observed[name], n, expected[name]) for name in names)
        p_value = min(1.0, smallest * len(names))
    return SplitTest(counts=observed, expected=expected, n=n, p_value=p_value, alpha=alpha)


def judge_split(
    counts: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    alpha: float,
    tolerance: float,
    power: float,
    what: str,
) -> Judgement:
    """Judge a weighted split: VIOLATED if the test rejects, HELD if it accepts on enough traffic.

    NOT_MEASURABLE with no requests; INCONCLUSIVE when the test accepts but fewer
    requests were counted than ``min_sample_size`` needs to catch a drift of
    ``tolerance`` with ``power``.
    """
    result = split_test(counts, weights, alpha=alpha)
    per_subset_alpha = alpha if len(result.counts) <= 2 else alpha / len(result.counts)
    # A subset with weight 0 or 1 needs no sample size: any stray request rejects.
    needed = max(
        (
            min_sample_size(p, tolerance, per_subset_alpha, power)
            for p in result.expected.values()
            if 0 < p < 1
        ),
        default=1,
    )
    evidence: dict[str, object] = {
        "counts": result.counts,
        "expected": result.expected,
        "observed": result.observed,
        "n": result.n,
        "p_value": result.p_value,
        "alpha": alpha,
        "tolerance": tolerance,
        "power": power,
        "min_sample_size": needed,
    }
    shares = ", ".join(
        f"{name} {result.counts[name]} ({_pct(result.observed.get(name, 0.0))} vs "
        f"{_pct(result.expected[name])})"
        for name in result.counts
    )
    if result.n == 0:
        return Judgement(Verdict.NOT_MEASURABLE, f"{what}: no requests were counted", evidence)
    if result.rejected:
        return Judgement(
            Verdict.VIOLATED,
            f"{what}: {shares}; exact binomial test rejects the weights "
            f"(p = {result.p_value:.3g} <= alpha {alpha:g})",
            evidence,
        )
    if result.n < needed:
        return Judgement(
            Verdict.INCONCLUSIVE,
            f"{what}: {shares}; consistent with the weights (p = {result.p_value:.3g}) but "
            f"{result.n} requests cannot catch a ±{tolerance * 100:g}-point drift with power "
            f"{power:g}; {needed} needed",
            evidence,
        )
    return Judgement(
        Verdict.HELD,
        f"{what}: {shares}; consistent with the weights (p = {result.p_value:.3g} > alpha "
        f"{alpha:g}, {result.n} >= {needed} requests)",
        evidence,
    )


def judge_exclusive_routing(
    counts: Mapping[str, int], *, expected: str, what: str, min_total: int = 1
) -> Judgement:
    """Judge "all of this traffic goes to ``expected``" (e.g. header ``env: canary`` → v2).

    Any request elsewhere is a VIOLATION; with none counted it is NOT_MEASURABLE;
    with fewer than ``min_total`` it is INCONCLUSIVE.
    """
    total = sum(counts.values())
    elsewhere = {name: c for name, c in sorted(counts.items()) if name != expected and c > 0}
    evidence: dict[str, object] = {
        "counts": dict(counts),
        "expected": expected,
        "total": total,
        "elsewhere": sum(elsewhere.values()),
    }
    if total == 0:
        return Judgement(Verdict.NOT_MEASURABLE, f"{what}: no requests were counted", evidence)
    if elsewhere:
        listed = ", ".join(f"{c} to {name}" for name, c in elsewhere.items())
        return Judgement(
            Verdict.VIOLATED,
            f"{what}: {listed} of {total} requests that must all go to {expected}",
            evidence,
        )
    if total < min_total:
        return Judgement(
            Verdict.INCONCLUSIVE,
            f"{what}: all {total} requests went to {expected}, but {min_total} are needed",
            evidence,
        )
    return Judgement(Verdict.HELD, f"{what}: all {total} requests went to {expected}", evidence)


def _pct(share: float) -> str:
    return f"{share * 100:.3g}%"
