"""Latency verdict exactness: our bucket-edge share against the runbook's interpolated p95.

1,000 synthetic latency distributions whose true p95 lies near the threshold
(log-normal, p95 drawn uniformly within ±20 % of it, a random spread, 2,000
requests each) are rendered into Istio's duration buckets. Each is judged by

- ours: ``meshproof.sli.latency.judge_latency`` (the share of requests ``<= threshold``,
  exact when the threshold is a bucket bound, an interval otherwise);
- the runbook's rule: ``histogram_quantile(0.95, ...) > threshold`` means violated;

and both are compared with the truth: the nearest-rank p95 of the raw
latencies, held when it is ``<= threshold`` (a bucket counts ``<= le``).

Rows: XC-LATENCY's threshold (100 ms, a bucket bound: the goal), the runbook's
P1 alert threshold (200 ms, between the bounds 100 and 250), and the runbook's
query as written at 100 ms, which sums both reporters: the server side reports
each request without the network round trip (drawn per distribution, 10–40 ms),
so the rule judges a mixture while ours keeps ``reporter="source"`` (FACTS.md).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.figure import Figure, run_benchmark
from meshproof.catalog import load_catalog
from meshproof.sli.histogram import bucket_observations, histogram_quantile
from meshproof.sli.latency import judge_latency
from meshproof.sli.verdict import Verdict

__all__ = ["Case", "Tally", "judge_cases", "main", "measure", "synthetic_cases"]

NAME = "latency_exactness"
DISTRIBUTIONS = 1000
REQUESTS = 2000
SPREAD = 0.2
"""True p95s are drawn from [threshold × (1 - SPREAD), threshold × (1 + SPREAD)]."""
SEED = 20261126
_Z95 = 1.6448536269514722  # the standard normal's 0.95 quantile


@dataclass(frozen=True, slots=True)
class Case:
    """One synthetic distribution: what the client saw and what each reporter records."""

    client_ms: Sequence[float]
    """Latencies as the calling side measures them: the truth, and what ours judges
    (the suite's query keeps ``reporter="source"``)."""
    rule_ms: Sequence[float]
    """Latencies in the histogram the runbook's rule judges."""


@dataclass(slots=True)
class Tally:
    """Verdicts of ours and of the runbook's rule against the truth."""

    threshold_ms: float
    cases: int = 0
    truly_held: int = 0
    ours_wrong: int = 0
    ours_inconclusive: int = 0
    rule_wrong: int = 0

    def text(self) -> str:
        return (f"{self.cases} at {self.threshold_ms:g} ms ({self.truly_held} truly held): "
                f"ours {self.ours_wrong} wrong, {self.ours_inconclusive} inconclusive; "
                f"runbook rule {self.rule_wrong} wrong")


def true_p95(latencies: Sequence[float], quantile: float) -> float:
    """The nearest-rank quantile of raw latencies."""
    ordered = sorted(latencies)
    return ordered[max(0, math.ceil(quantile * len(ordered)) - 1)]


def synthetic_cases(threshold_ms: float, *, count: int, requests: int, seed: int,
                    both_reporters: bool = False) -> list[Case]:
    """``count`` log-normal distributions with a p95 near ``threshold_ms``."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        p95 = threshold_ms * rng.uniform(1 - SPREAD, 1 + SPREAD)
        sigma = rng.uniform(0.1, 0.8)
        client = rng.lognormal(math.log(p95) - _Z95 * sigma, sigma, requests)
        seen_by_rule = client
        if both_reporters:
            round_trip = rng.uniform(10.0, 40.0)
            seen_by_rule = np.concatenate([client, np.maximum(client - round_trip, 0.1)])
        cases.append(Case(client.tolist(), seen_by_rule.tolist()))
    return cases


def judge_cases(cases: Sequence[Case], *, threshold_ms: float, quantile: float,
                min_samples: int) -> Tally:
    """Count wrong and inconclusive verdicts of ours and of the runbook's rule."""
    tally = Tally(threshold_ms)
    for case in cases:
        held = true_p95(case.client_ms, quantile) <= threshold_ms
        ours = judge_latency(bucket_observations(case.client_ms), threshold_ms=threshold_ms,
                             quantile=quantile, min_samples=min_samples).verdict
        rule_buckets = bucket_observations(case.rule_ms)
        rule_held = not histogram_quantile(quantile, rule_buckets) > threshold_ms
        tally.cases += 1
        tally.truly_held += held
        if ours is Verdict.INCONCLUSIVE:
            tally.ours_inconclusive += 1
        elif (ours is Verdict.HELD) != held:
            tally.ours_wrong += 1
        tally.rule_wrong += rule_held != held
    return tally


def alert_threshold_ms(expr: str) -> float:
    """The number an alert expression compares its quantile with (``... > 200``)."""
    match = re.search(r">\s*([0-9.]+)\s*$", expr)
    if match is None:
        raise ValueError(f"no trailing '> N' in alert expression {expr!r}")
    return float(match[1])


def measure(count: int = DISTRIBUTIONS, requests: int = REQUESTS) -> Figure:
    catalog = load_catalog()
    xc = catalog.get("XC-LATENCY").thresholds
    quantile, threshold, min_samples = float(xc["quantile"]), float(xc["max_ms"]), int(
        xc["min_samples"])
    alert = next(a for a in catalog.alerts_for("XC-LATENCY") if a.name == "CrossClusterLatencyHigh")
    alert_ms = alert_threshold_ms(alert.expr)
    rows = [
        ("XC-LATENCY", judge_cases(
            synthetic_cases(threshold, count=count, requests=requests, seed=SEED),
            threshold_ms=threshold, quantile=quantile, min_samples=min_samples)),
        ("P1 alert", judge_cases(
            synthetic_cases(alert_ms, count=count, requests=requests, seed=SEED + 1),
            threshold_ms=alert_ms, quantile=quantile, min_samples=min_samples)),
        ("both reporters", judge_cases(
            synthetic_cases(threshold, count=count, requests=requests, seed=SEED + 2,
                            both_reporters=True),
            threshold_ms=threshold, quantile=quantile, min_samples=min_samples)),
    ]
    for label, tally in rows:
        print(f"{label}: {tally.text()}", flush=True)
    goal = rows[0][1]
    text = "; ".join(f"{label} {tally.text()}" for label, tally in rows)
    return Figure(NAME, text, "0 wrong for ours (inconclusive allowed)",
                  all(t.ours_wrong == 0 for _, t in rows) and goal.cases == count)


def main() -> int:
    return run_benchmark(NAME, measure)


if __name__ == "__main__":
    sys.exit(main())
