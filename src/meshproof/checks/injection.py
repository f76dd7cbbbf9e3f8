"""INJECTION: every pod of an injection-enabled namespace runs an ``istio-proxy`` sidecar."""

from __future__ import annotations

from typing import Any

from meshproof.clients.kube import ClusterApi
from meshproof.proxypod import has_proxy
from meshproof.sli.ratios import judge_ratio, success_ratio
from meshproof.sli.verdict import Judgement

__all__ = ["injection_enabled_namespaces", "has_sidecar", "judge_injection"]


def injection_enabled_namespaces(api: ClusterApi) -> list[str]:
    """Namespaces whose label asks for injection (``istio-injection=enabled``)."""
    namespaces = api.get("/api/v1/namespaces", labelSelector="istio-injection=enabled")
    return sorted(n["metadata"]["name"] for n in namespaces.get("items") or []
                  if not n["metadata"].get("deletionTimestamp"))


def has_sidecar(pod: dict[str, Any]) -> bool:
    """Whether the pod runs an Istio proxy, as a classic or a native sidecar."""
    return has_proxy(pod)


def _expected(pod: dict[str, Any]) -> bool:
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return False
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if (pod.get("spec") or {}).get("hostNetwork"):
        return False
    opt_out = (meta.get("labels") or {}).get("sidecar.istio.io/inject") or (
        meta.get("annotations") or {}).get("sidecar.istio.io/inject")
    return str(opt_out).lower() != "false"


def judge_injection(api: ClusterApi, *, required: float,
                    fresh_pod: dict[str, Any] | None = None) -> Judgement:
    """Pods that should have a sidecar and do, over pods that should (``fresh_pod``: a pod the
    run just created in such a namespace, which shows what the injector does now)."""
    pods: list[dict[str, Any]] = []
    namespaces = injection_enabled_namespaces(api)
    for ns in namespaces:
        pods += [p for p in api.get(f"/api/v1/namespaces/{ns}/pods").get("items") or []
                 if _expected(p)]
    if fresh_pod is not None and fresh_pod not in pods:
        pods.append(fresh_pod)
    missing = sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                     for p in pods if not has_sidecar(p))
    judgement = judge_ratio(success_ratio(len(pods) - len(missing), len(pods)),
                            required=required, what=f"pods with a sidecar on {api.cluster}")
    judgement.evidence.update({"namespaces": namespaces, "without_sidecar": missing[:20],
                               "fresh_pod_injected": has_sidecar(fresh_pod)
                               if fresh_pod is not None else None})
    return judgement
