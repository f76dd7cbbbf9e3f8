"""PROXY-HEALTH: sidecars Ready and in sync with istiod (what ``istioctl proxy-status`` shows).

Sync comes from istiod's ``/debug/syncz`` on its monitoring port 15014, read by
``pilot-discovery request GET /debug/syncz`` in each istiod pod (istiod answers its
debug endpoints only on localhost or with a token; through ``pods/proxy`` a real
istiod answers 401: :mod:`meshproof.clients.istiod`): for each connected proxy the
config version istiod sent and the one the proxy acknowledged. A proxy is healthy when its istio-proxy
container is Ready and istiod knows it with nothing unacknowledged.
"""

from __future__ import annotations

import json
from typing import Any

from meshproof.clients.istiod import ISTIOD_NAMESPACE, DebugUnreadable, debug_get
from meshproof.clients.kube import ClusterApi
from meshproof.errors import MeshproofError
from meshproof.proxypod import has_proxy, proxy_status
from meshproof.sli.ratios import judge_ratio, success_ratio
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["sync_status", "judge_proxy_health", "SYNC_KINDS"]

SYNC_KINDS = ("cluster", "listener", "route", "endpoint")


def sync_status(api: ClusterApi, unanswered: list[str] | None = None
                ) -> dict[str, dict[str, Any]]:
    """istiod's view of its proxies, keyed ``<pod>.<namespace>`` (every istiod pod merged).
    An istiod pod that does not answer (crash-looping, overloaded) knows of no proxy; its
    name and the error go to ``unanswered``. Raises ``DebugUnreadable`` when the suite
    cannot read istiod's debug endpoints at all on this target (say, no ``pods/exec``)."""
    pods = api.get(f"/api/v1/namespaces/{ISTIOD_NAMESPACE}/pods", labelSelector="app=istiod")
    out: dict[str, dict[str, Any]] = {}
    for pod in pods.get("items") or []:
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        name = pod["metadata"]["name"]
        try:
            rows = json.loads(debug_get(api, name, "/debug/syncz") or "[]")
        except DebugUnreadable:
            raise
        except (MeshproofError, ValueError) as exc:
            if unanswered is not None:
                unanswered.append(f"{name}: {exc}")
            continue
        for row in rows:
            out[str(row.get("proxy", ""))] = row
    return out


def _stale(row: dict[str, Any]) -> list[str]:
    return [k for k in SYNC_KINDS if row.get(f"{k}_sent") != row.get(f"{k}_acked")]


def judge_proxy_health(api: ClusterApi, *, namespaces: list[str], required: float) -> Judgement:
    unanswered: list[str] = []
    try:
        sync = sync_status(api, unanswered)
    except DebugUnreadable as exc:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"istiod's sync state cannot be read on {api.cluster}: {exc}",
                         {"istiod_unreadable": str(exc)})
    proxies: list[str] = []
    problems: dict[str, str] = {}
    for ns in namespaces:
        for pod in api.get(f"/api/v1/namespaces/{ns}/pods").get("items") or []:
            meta, status = pod["metadata"], pod.get("status") or {}
            if meta.get("deletionTimestamp") or status.get("phase") != "Running":
                continue
            if not has_proxy(pod):
                continue
            proxy = proxy_status(pod) or {}
            key = f"{meta['name']}.{ns}"
            proxies.append(key)
            row = sync.get(key)
            if not proxy.get("ready"):
                problems[key] = "istio-proxy not Ready"
            elif row is None:
                problems[key] = "not connected to istiod"
            elif _stale(row):
                problems[key] = f"STALE ({', '.join(_stale(row))}: sent {row.get('cluster_sent')}" \
                                f", acked {row.get('cluster_acked')})"
    evidence = {"proxies": len(proxies), "problems": dict(sorted(problems.items())[:20]),
                "istiod_connected": len(sync)}
    if unanswered:
        evidence["istiod_unanswered"] = unanswered
    if not proxies:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"no sidecar proxies in {', '.join(namespaces)} on {api.cluster}",
                         evidence)
    judgement = judge_ratio(success_ratio(len(proxies) - len(problems), len(proxies)),
                            required=required,
                            what=f"healthy, synced sidecars on {api.cluster}")
    judgement.evidence.update(evidence)
    return judgement
