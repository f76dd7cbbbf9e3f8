"""MULTICLUSTER-SYNC: each istiod has every other cluster registered through a remote secret."""

from __future__ import annotations

from meshproof.clients.kube import ClusterApi
from meshproof.clients.prometheus import PromQL
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["REMOTE_QUERY", "judge_remote_clusters"]

REMOTE_QUERY = 'max(istiod_managed_clusters{cluster_type="remote"})'


def judge_remote_clusters(api: ClusterApi, prom: PromQL, *, others: list[str]) -> Judgement:
    secrets = api.get("/api/v1/namespaces/istio-system/secrets",
                      labelSelector="istio/multiCluster=true").get("items") or []
    named = sorted({key for s in secrets for key in (s.get("data") or {})})
    managed = prom.scalar(REMOTE_QUERY)
    evidence: dict[str, object] = {"remote_secrets_for": named, "query": REMOTE_QUERY,
                                   "istiod_remote_clusters": managed, "expected": others}
    missing = [o for o in others if o not in named]
    if missing:
        return Judgement(Verdict.VIOLATED, f"{api.cluster}: no remote secret for "
                         f"{', '.join(missing)} (istioctl create-remote-secret)", evidence)
    if managed is None:
        return Judgement(Verdict.NOT_MEASURABLE, f"{api.cluster}: Prometheus has no "
                         "istiod_managed_clusters series (is istiod scraped on 15014?)", evidence)
    if managed < len(others):
        return Judgement(Verdict.VIOLATED, f"{api.cluster}: istiod manages {managed:g} remote "
                         f"clusters, expected {len(others)}", evidence)
    return Judgement(Verdict.HELD, f"{api.cluster}: istiod watches {', '.join(others)} "
                     "through remote secrets", evidence)
