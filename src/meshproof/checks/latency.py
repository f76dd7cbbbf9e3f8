"""XC-LATENCY: cross-cluster request duration, from the source side's Istio histogram."""

from __future__ import annotations

import math

from meshproof.clients.prometheus import PromQL
from meshproof.sli.latency import judge_latency
from meshproof.sli.verdict import Judgement

__all__ = ["cross_cluster_buckets", "judge_cross_cluster_latency", "latency_query"]


def latency_query(source: str, destination: str, window_s: int) -> str:
    """Buckets of requests from ``source`` to ``destination`` over the window.

    ``reporter="source"``: the runbook's query counts every request twice
    (client and server side; FACTS.md). Pairs are named one by one because
    PromQL cannot compare two labels of one series.
    """
    selector = (f'reporter="source",source_cluster="{source}",'
                f'destination_cluster="{destination}"')
    return (f"sum by (le) (increase(istio_request_duration_milliseconds_bucket{{{selector}}}"
            f"[{window_s}s]))")


def cross_cluster_buckets(prom: PromQL, source: str, destination: str,
                          window_s: int) -> list[tuple[float, float]]:
    buckets = []
    for sample in prom.instant(latency_query(source, destination, window_s)):
        le = sample.labels.get("le", "")
        bound = math.inf if le == "+Inf" else float(le)
        buckets.append((bound, sample.value))
    return sorted(buckets)


def judge_cross_cluster_latency(prom: PromQL, source: str, destination: str, *,
                                window_s: int, quantile: float, max_ms: float,
                                min_samples: int) -> Judgement:
    judgement = judge_latency(
        cross_cluster_buckets(prom, source, destination, window_s), threshold_ms=max_ms,
        quantile=quantile, min_samples=min_samples,
        what=f"requests {source} → {destination}")
    judgement.evidence.update({"query": latency_query(source, destination, window_s),
                               "prometheus": prom.cluster, "window_s": window_s})
    return judgement
