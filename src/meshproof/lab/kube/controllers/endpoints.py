"""Endpoints and discovery.k8s.io/v1 EndpointSlices from the pods a Service selects.

Reference: kubernetes/kubernetes ``pkg/controller/endpoint/endpoints_controller.go``
(ready pods in ``addresses``, the rest in ``notReadyAddresses``, terminating pods
left out, ``publishNotReadyAddresses``) and ``pkg/controller/endpointslice/``
(labels ``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by``,
conditions ready / serving / terminating, ports by name). LoadBalancer Services
get ``status.loadBalancer.ingress`` = their clusterIP, which the lab serves.
"""

from __future__ import annotations

import hashlib
from typing import Any

from meshproof.lab.kube.controllers.base import Controller, Key, is_pod_ready, owner_ref
from meshproof.lab.kube.controllers.serviceproxy import ServiceProxy
from meshproof.lab.kube.interfaces import AlreadyExists, NotFound, ResourceKind
from meshproof.lab.kube.selectors import selector_from_match

__all__ = ["EndpointsController", "resolve_target_port"]

Obj = dict[str, Any]
MANAGED_BY = "endpointslice-controller.k8s.io"


def resolve_target_port(svc_port: Obj, pod: Obj) -> int | None:
    """The pod port a Service port sends to (a named targetPort looks in the pod's containers)."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for c in pod.get("spec", {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == svc_port.get("protocol",
                                                                                    "TCP"):
                return int(p["containerPort"])
    return None


class EndpointsController(Controller):
    name = "endpoints"

    def __init__(self, store: Any, *, cluster: str, zone: str, node_name: str,
                 proxy: ServiceProxy | None = None) -> None:
        super().__init__(store, cluster=cluster)
        self.zone = zone
        self.node_name = node_name
        self.proxy = proxy
        self.svc_res = self.res("v1", "Service")
        self.pods = self.res("v1", "Pod")
        self.ep_res = self.res("v1", "Endpoints")
        self.slice_res = self.res("discovery.k8s.io/v1", "EndpointSlice")
        self._services_by_ns: dict[str, set[str]] = {}
        self.watch_related(self.pods, self._services_of_pod)

    @property
    def primary(self) -> ResourceKind:
        return self.svc_res

    def _services_of_pod(self, pod: Obj) -> list[Key]:
        ns = pod["metadata"].get("namespace", "")
        return [(ns, s) for s in self._services_by_ns.get(ns, ())]

    async def on_deleted(self, obj: Obj) -> None:
        ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        self._services_by_ns.get(ns, set()).discard(name)
        if self.proxy is not None:
            await self.proxy.remove((ns, name))
        if obj.get("spec", {}).get("selector"):
            try:
                await self.store.delete(self.ep_res, name, namespace=ns)
            except NotFound:
                pass

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        try:
            svc = await self.store.get(self.svc_res, name, namespace=ns)
        except NotFound:
            return
        self._services_by_ns.setdefault(ns, set()).add(name)
        spec = svc.get("spec", {})
        await self._load_balancer(svc)
        if not spec.get("selector"):
            if self.proxy is not None:
                await self._proxy_from_endpoints(svc)
            return
        selector = selector_from_match({"matchLabels": spec["selector"]})
        pods, _ = await self.store.list(self.pods, namespace=ns)
        chosen = [p for p in pods if selector.matches(p["metadata"].get("labels"))
                  and p.get("status", {}).get("podIP")
                  and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        publish_all = bool(spec.get("publishNotReadyAddresses"))
        ports = spec.get("ports") or []
        subsets: dict[tuple[tuple[str, int, str], ...], Obj] = {}
        slice_endpoints: list[Obj] = []
        slice_ports: dict[tuple[str, int, str], Obj] = {}
        backends: dict[int, list[tuple[str, int]]] = {}
        for pod in sorted(chosen, key=lambda p: p["metadata"]["name"]):
            meta = pod["metadata"]
            ip = pod["status"]["podIP"]
            terminating = bool(meta.get("deletionTimestamp"))
            ready = is_pod_ready(pod) and not terminating
            resolved: list[tuple[str, int, str]] = []
            for sp in ports:
                target = resolve_target_port(sp, pod)
                if target is not None:
                    resolved.append((sp.get("name", ""), target, sp.get("protocol", "TCP")))
                    if ready:
                        backends.setdefault(int(sp["port"]), []).append((ip, target))
            ref = {"kind": "Pod", "namespace": ns, "name": meta["name"], "uid": meta.get("uid")}
            node = pod.get("spec", {}).get("nodeName") or self.node_name
            if not terminating:
                group = subsets.setdefault(tuple(resolved), {"ports": [
                    {"name": n, "port": p, "protocol": pr} if n else
                    {"port": p, "protocol": pr} for n, p, pr in resolved]})
                where = "addresses" if ready or publish_all else "notReadyAddresses"
                group.setdefault(where, []).append({"ip": ip, "nodeName": node, "targetRef": ref})
            slice_endpoints.append({
                "addresses": [ip],
                "conditions": {"ready": ready or (publish_all and not terminating),
                               "serving": is_pod_ready(pod), "terminating": terminating},
                "nodeName": node, "zone": self.zone, "targetRef": ref,
            })
            for n, p, pr in resolved:
                slice_ports[(n, p, pr)] = {"name": n, "port": p, "protocol": pr}
        await self._write_endpoints(svc, [s for s in subsets.values()
                                          if s.get("addresses") or s.get("notReadyAddresses")])
        await self._write_slice(svc, slice_endpoints, list(slice_ports.values()))
        if self.proxy is not None:
            await self.proxy.update((ns, name), spec.get("clusterIP", ""), {
                int(sp["port"]): backends.get(int(sp["port"]), []) for sp in ports
                if sp.get("protocol", "TCP") == "TCP"})

    async def _proxy_from_endpoints(self, svc: Obj) -> None:
        """Selector-less Services (hand-written Endpoints) are proxied too."""
        assert self.proxy is not None
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        try:
            ep = await self.store.get(self.ep_res, name, namespace=ns)
        except NotFound:
            ep = {}
        backends: dict[int, list[tuple[str, int]]] = {}
        for sp in svc.get("spec", {}).get("ports") or []:
            for subset in ep.get("subsets") or []:
                for port in subset.get("ports") or []:
                    if port.get("name", "") == sp.get("name", ""):
                        for addr in subset.get("addresses") or []:
                            backends.setdefault(int(sp["port"]), []).append(
                                (addr["ip"], int(port["port"])))
        await self.proxy.update((ns, name), svc.get("spec", {}).get("clusterIP", ""), backends)

    async def _load_balancer(self, svc: Obj) -> None:
        spec = svc.get("spec", {})
        if spec.get("type") != "LoadBalancer" or not spec.get("clusterIP"):
            return
        want = {"ingress": [{"ip": spec["clusterIP"], "ipMode": "VIP"}]}
        if svc.get("status", {}).get("loadBalancer") == want:
            return

        def put(obj: Obj) -> None:
            obj.setdefault("status", {})["loadBalancer"] = want

        await self.store.mutate(self.svc_res, svc["metadata"]["name"], put,
                                namespace=svc["metadata"]["namespace"], subresource="status")

    async def _write_endpoints(self, svc: Obj, subsets: list[Obj]) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        labels = dict(svc["metadata"].get("labels") or {})
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": name, "namespace": ns, "labels": labels}}
        if subsets:
            body["subsets"] = subsets
        try:
            cur = await self.store.get(self.ep_res, name, namespace=ns)
        except NotFound:
            try:
                await self.store.create(self.ep_res, body, namespace=ns)
            except AlreadyExists:
                pass
            return
        if cur.get("subsets") == body.get("subsets") and \
                (cur["metadata"].get("labels") or {}) == labels:
            return

        def put(obj: Obj) -> None:
            obj["metadata"]["labels"] = labels
            if subsets:
                obj["subsets"] = subsets
            else:
                obj.pop("subsets", None)

        await self.store.mutate(self.ep_res, name, put, namespace=ns)

    async def _write_slice(self, svc: Obj, endpoints: list[Obj], ports: list[Obj]) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        # A stable name per Service (the real controller uses generateName; one slice suffices).
        suffix = hashlib.sha256(f"{ns}/{name}".encode()).hexdigest()[:5]
        slice_name = f"{name}-{suffix}"
        labels = {**(svc["metadata"].get("labels") or {}),
                  "kubernetes.io/service-name": name,
                  "endpointslice.kubernetes.io/managed-by": MANAGED_BY}
        try:
            cur = await self.store.get(self.slice_res, slice_name, namespace=ns)
        except NotFound:
            body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": slice_name, "namespace": ns, "labels": labels,
                                 "ownerReferences": [owner_ref(svc)]},
                    "addressType": "IPv4", "endpoints": endpoints, "ports": ports}
            try:
                await self.store.create(self.slice_res, body, namespace=ns)
            except AlreadyExists:
                pass
            return
        if cur.get("endpoints") == endpoints and cur.get("ports") == ports:
            return

        def put(obj: Obj) -> None:
            obj["endpoints"], obj["ports"] = endpoints, ports
            obj["metadata"]["labels"] = labels

        await self.store.mutate(self.slice_res, slice_name, put, namespace=ns)
