"""The lab's load-balancer provider: a LoadBalancer Service gets an external address.

kind clusters get theirs from MetalLB, carved from the docker network; the lab's
clusters share the host's loopback, where a Service's clusterIP is already
reachable from everywhere (the lab's kube-proxy listens there), so that address
is published as the Service's ``status.loadBalancer.ingress`` — a stable VIP
that outlives the pods behind it, as a real load balancer does.
"""

from __future__ import annotations

from typing import Any

from meshproof.lab.kube.controllers.base import Controller, Key
from meshproof.lab.kube.interfaces import NotFound, ResourceKind

__all__ = ["LoadBalancerController"]


class LoadBalancerController(Controller):
    name = "service-lb-controller"
    component = "service-controller"

    @property
    def primary(self) -> ResourceKind:
        return self.res("v1", "Service")

    async def reconcile(self, key: Key) -> None:
        namespace, name = key
        try:
            svc = await self.store.get(self.primary, name, namespace=namespace)
        except NotFound:
            return
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if spec.get("type") != "LoadBalancer" or not ip or ip == "None":
            return
        wanted = [{"ip": ip, "ipMode": "VIP"}]
        if ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") == wanted:
            return

        def publish(obj: dict[str, Any]) -> None:
            obj.setdefault("status", {})["loadBalancer"] = {"ingress": wanted}

        await self.store.mutate(self.primary, name, publish, namespace=namespace,
                                subresource="status")
        await self.event(svc, reason="IPAllocated", message=f"Assigned IP [\"{ip}\"]")
