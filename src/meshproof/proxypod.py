"""Where a pod's Istio proxy is, in both shapes injection gives it.

Classic injection adds ``istio-proxy`` to ``spec.containers`` (its status in
``status.containerStatuses``). Since Istio 1.28, on kubelets 1.33 or newer, injection adds it
as a native sidecar: an entry of ``spec.initContainers`` with ``restartPolicy: Always``, its
status in ``status.initContainerStatuses`` (istio/istio
``manifests/charts/istio-control/istio-discovery/files/injection-template.yaml``, the
``$nativeSidecar`` branch; ``pkg/kube/inject/webhook.go`` ``DetectNativeSidecar``;
Kubernetes KEP-753). Every reader of the proxy in the suite goes through this module.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PROXY_CONTAINER", "has_proxy", "is_native_sidecar", "proxy_container",
           "proxy_status"]

PROXY_CONTAINER = "istio-proxy"

Obj = dict[str, Any]


def _restartable(container: Obj) -> bool:
    return container.get("restartPolicy") == "Always"


def proxy_container(pod: Obj) -> Obj | None:
    """The ``istio-proxy`` container spec of a pod, classic or native; None without one."""
    spec = pod.get("spec") or {}
    for c in spec.get("containers") or []:
        if c.get("name") == PROXY_CONTAINER:
            return dict(c)
    for c in spec.get("initContainers") or []:
        if c.get("name") == PROXY_CONTAINER and _restartable(c):
            return dict(c)
    return None


def has_proxy(pod: Obj) -> bool:
    """Whether the pod was given an Istio proxy (in either shape)."""
    return proxy_container(pod) is not None


def is_native_sidecar(pod: Obj) -> bool:
    """Whether the pod's proxy is a native sidecar (a restartable init container)."""
    return any(c.get("name") == PROXY_CONTAINER and _restartable(c)
               for c in (pod.get("spec") or {}).get("initContainers") or [])


def proxy_status(pod: Obj) -> Obj | None:
    """The proxy's container status (from ``initContainerStatuses`` for a native sidecar);
    None when the pod has no proxy or the kubelet has not reported it yet."""
    status = pod.get("status") or {}
    key = "initContainerStatuses" if is_native_sidecar(pod) else "containerStatuses"
    return next((s for s in status.get(key) or [] if s.get("name") == PROXY_CONTAINER), None)
