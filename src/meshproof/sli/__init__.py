"""SLI math: pure functions on plain data, independent of any transport.

- ``verdict``: ``Verdict`` and ``Judgement``, the outcome of every check.
- ``histogram``: PromQL-exact ``histogram_quantile`` and the share at or below a bound.
- ``latency``: the latency verdict, decided from bucket counts.
- ``ratios``: success and TLS-handshake ratios.
- ``series``: counter increase, availability of ``up``, time to recover.
- ``split``: exact binomial test of weighted routing and the sample size it needs.
"""

from __future__ import annotations

from meshproof.sli.compare import meets_share
from meshproof.sli.histogram import (
    ISTIO_DURATION_BUCKETS_MS,
    Buckets,
    NormalisedBuckets,
    Share,
    bucket_observations,
    histogram_quantile,
    normalise_buckets,
    share_at_or_below,
)
from meshproof.sli.latency import judge_latency
from meshproof.sli.ratios import (
    Ratio,
    handshake_success_ratio,
    is_not_5xx,
    judge_ratio,
    success_ratio,
    success_ratio_by_code,
)
from meshproof.sli.series import (
    Availability,
    Band,
    Recovery,
    Sample,
    availability,
    counter_increase,
    judge_availability,
    prometheus_increase,
    time_to_recover,
)
from meshproof.sli.split import (
    SplitTest,
    binomial_test,
    judge_exclusive_routing,
    judge_split,
    min_sample_size,
    rejection_power,
    split_test,
)
from meshproof.sli.verdict import Judgement, Verdict

__all__ = [
    "ISTIO_DURATION_BUCKETS_MS",
    "Availability",
    "Band",
    "Buckets",
    "Judgement",
    "NormalisedBuckets",
    "Ratio",
    "Recovery",
    "Sample",
    "Share",
    "SplitTest",
    "Verdict",
    "availability",
    "binomial_test",
    "bucket_observations",
    "counter_increase",
    "handshake_success_ratio",
    "histogram_quantile",
    "is_not_5xx",
    "judge_availability",
    "judge_exclusive_routing",
    "judge_latency",
    "judge_ratio",
    "judge_split",
    "meets_share",
    "min_sample_size",
    "normalise_buckets",
    "prometheus_increase",
    "rejection_power",
    "share_at_or_below",
    "split_test",
    "success_ratio",
    "success_ratio_by_code",
    "time_to_recover",
]
