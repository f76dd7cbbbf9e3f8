"""ENVOY-MEMORY: no proxy's allocated memory passes the bound (the runbook's P2 alert)."""

from __future__ import annotations

from meshproof.clients.prometheus import PromQL
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["MEMORY_QUERY", "judge_proxy_memory"]

MEMORY_QUERY = 'max by (namespace, pod) (envoy_server_memory_allocated{job="kubernetes-pods"})'


def judge_proxy_memory(prom: PromQL, *, max_bytes: float) -> Judgement:
    samples = prom.instant(MEMORY_QUERY)
    evidence: dict[str, object] = {"query": MEMORY_QUERY, "prometheus": prom.cluster,
                                   "proxies": len(samples), "max_bytes": max_bytes}
    if not samples:
        return Judgement(Verdict.NOT_MEASURABLE, f"{prom.cluster}: no envoy_server_memory_"
                         "allocated series (are the proxies scraped on 15020?)", evidence)
    over = {f"{s.labels.get('namespace')}/{s.labels.get('pod')}": s.value for s in samples
            if s.value > max_bytes}
    top = max(samples, key=lambda s: s.value)
    evidence.update({"largest": f"{top.labels.get('namespace')}/{top.labels.get('pod')}",
                     "largest_bytes": top.value, "over": over})
    if over:
        return Judgement(Verdict.VIOLATED, f"{prom.cluster}: {len(over)} proxies above "
                         f"{max_bytes / 2**20:.0f} MiB, largest {top.value / 2**20:.0f} MiB",
                         evidence)
    return Judgement(Verdict.HELD, f"{prom.cluster}: all {len(samples)} proxies under "
                     f"{max_bytes / 2**20:.0f} MiB (largest {top.value / 2**20:.0f} MiB)",
                     evidence)
