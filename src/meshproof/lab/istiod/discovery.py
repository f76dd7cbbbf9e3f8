"""istiod's discovery state: caches of every watched cluster, the mesh view, proxy sync.

Changes are debounced (as istiod's PILOT_DEBOUNCE_AFTER, 100 ms) into a new
generation; proxies long-poll for their config and report the version they
applied, which is what ``/debug/syncz`` and ``pilot_proxy_convergence_time`` show.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml

from meshproof.lab.istiod.kubeapi import ApiEndpoint, Informer, endpoint_from_kubeconfig
from meshproof.lab.istiod.metrics import IstiodMetrics
from meshproof.lab.istiod.translate import proxy_config_for, proxy_mode
from meshproof.lab.istiod.view import (
    ClusterView,
    MeshSettings,
    MeshView,
    Obj,
    PilotFeatures,
    labels_of,
)
from meshproof.lab.mesh.config import ProxyConfig

__all__ = ["ISTIO_RESOURCES", "Discovery", "ProxySync"]

DEBOUNCE = 0.1
ISTIO_RESOURCES = {
    "virtual_services": "/apis/networking.istio.io/v1/virtualservices",
    "destination_rules": "/apis/networking.istio.io/v1/destinationrules",
    "gateways": "/apis/networking.istio.io/v1/gateways",
    "peer_authentications": "/apis/security.istio.io/v1/peerauthentications",
    "authorization_policies": "/apis/security.istio.io/v1/authorizationpolicies",
}
DISCOVERY_RESOURCES = {
    "services": "/api/v1/services",
    "pods": "/api/v1/pods",
    "nodes": "/api/v1/nodes",
    "namespaces": "/api/v1/namespaces",
}
REMOTE_SECRET_LABEL = "istio/multiCluster"


@dataclass(slots=True)
class ProxySync:
    """One proxy as istiod tracks it."""

    cluster: str
    namespace: str
    pod: str
    proxy_type: str
    sent: str = ""
    acked: str = ""
    sent_generation: int = 0
    last_seen: float = field(default_factory=time.monotonic)


class Discovery:
    def __init__(self, cluster: str, local: ApiEndpoint, metrics: IstiodMetrics,
                 *, log: Callable[[str], None] = print,
                 features: PilotFeatures | None = None) -> None:
        self.cluster = cluster
        self.features = features or PilotFeatures()
        self.local = local
        self.metrics = metrics
        self.log = log
        self.generation = 0
        self.generation_started: dict[int, float] = {0: time.monotonic()}
        self.proxies: dict[tuple[str, str], ProxySync] = {}
        self._changed = asyncio.Event()
        self._pushed = asyncio.Condition()
        self._local: dict[str, Informer] = {}
        self._remote: dict[str, tuple[ApiEndpoint, dict[str, Informer]]] = {}
        self._view: MeshView | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- caches ------------------------------------------------------------------------------

    def _informer(self, endpoint: ApiEndpoint, path: str) -> Informer:
        informer = Informer(endpoint, path, self._changed.set, log=self.log)
        informer.start()
        return informer

    def start(self) -> None:
        for name, path in {**DISCOVERY_RESOURCES, **ISTIO_RESOURCES}.items():
            self._local[name] = self._informer(self.local, path)
        self._local["secrets"] = self._informer(self.local, "/api/v1/namespaces/istio-system/secrets")
        self._local["configmaps"] = self._informer(
            self.local, "/api/v1/namespaces/istio-system/configmaps")
        self._tasks.append(asyncio.get_running_loop().create_task(self._push_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for informer in list(self._local.values()) + [
                i for _, infs in self._remote.values() for i in infs.values()]:
            await informer.stop()

    async def synced(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.gather(
                *(i.synced.wait() for i in self._local.values())), timeout)
        except TimeoutError:
            return False
        return True

    def _sync_remotes(self) -> None:
        wanted: dict[str, ApiEndpoint] = {}
        for secret in self._local["secrets"].items():
            if labels_of(secret).get(REMOTE_SECRET_LABEL) != "true":
                continue
            for name, data in (secret.get("data") or {}).items():
                if name == self.cluster:
                    continue
                try:
                    wanted[name] = endpoint_from_kubeconfig(name, base64.b64decode(data).decode())
                except (ValueError, KeyError, TypeError) as exc:
                    self.log(f"remote secret for {name}: {exc}")
        for name in list(self._remote):
            if name not in wanted or self._remote[name][0] != wanted[name]:
                _, informers = self._remote.pop(name)
                for informer in informers.values():
                    asyncio.get_running_loop().create_task(informer.stop())
        for name, endpoint in wanted.items():
            if name not in self._remote:
                self.log(f"watching remote cluster {name} at {endpoint.server}")
                self._remote[name] = (endpoint, {
                    k: self._informer(endpoint, p) for k, p in DISCOVERY_RESOURCES.items()})
        self.metrics.clusters = {"local": 1, "remote": len(self._remote)}

    # -- the view ----------------------------------------------------------------------------

    @staticmethod
    def _network(namespaces: list[Obj]) -> str:
        for ns in namespaces:
            if (ns.get("metadata") or {}).get("name") == "istio-system":
                return labels_of(ns).get("topology.istio.io/network", "")
        return ""

    def _mesh_settings(self) -> MeshSettings:
        for cm in self._local["configmaps"].items():
            if (cm.get("metadata") or {}).get("name") == "istio":
                mesh = yaml.safe_load((cm.get("data") or {}).get("mesh", "")) or {}
                default_config = mesh.get("defaultConfig") or {}
                return MeshSettings(
                    trust_domain=str(mesh.get("trustDomain", "cluster.local")),
                    trust_domain_aliases=[str(a) for a in mesh.get("trustDomainAliases") or []],
                    mesh_id=str(default_config.get("meshId", mesh.get("meshId", "mesh1"))),
                    root_namespace=str(mesh.get("rootNamespace", "istio-system")),
                    default_config=default_config,
                )
        return MeshSettings()

    def build_view(self) -> MeshView:
        loc = self._local
        clusters = {self.cluster: ClusterView(
            self.cluster, self._network(loc["namespaces"].items()),
            services=loc["services"].items(), pods=loc["pods"].items(),
            nodes=loc["nodes"].items(), secrets=loc["secrets"].items())}
        for name, (_, informers) in self._remote.items():
            clusters[name] = ClusterView(
                name, self._network(informers["namespaces"].items()),
                services=informers["services"].items(), pods=informers["pods"].items(),
                nodes=informers["nodes"].items())
        return MeshView(local=self.cluster, clusters=clusters, mesh=self._mesh_settings(),
                        features=self.features,
                        **{k: loc[k].items() for k in ISTIO_RESOURCES})

    def namespaces(self) -> list[Obj]:
        """The local cluster's namespaces."""
        return self._local["namespaces"].items()

    @property
    def view(self) -> MeshView:
        if self._view is None:
            self._view = self.build_view()
        return self._view

    async def _push_loop(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(DEBOUNCE)
            self._changed.clear()
            started = time.monotonic()
            self._sync_remotes()
            self._view = self.build_view()
            self.metrics.services = len({(s.get("metadata") or {}).get("uid")
                                         for c in self._view.clusters.values()
                                         for s in c.services})
            self.generation += 1
            self.generation_started[self.generation] = started
            for old in [g for g in self.generation_started if g < self.generation - 50]:
                del self.generation_started[old]
            self.metrics.push(time.monotonic() - started)
            async with self._pushed:
                self._pushed.notify_all()

    # -- proxies -----------------------------------------------------------------------------

    def config_for(self, namespace: str, pod_name: str) -> ProxyConfig | None:
        view = self.view
        pod = view.local_cluster.pod(namespace, pod_name)
        if pod is None or not (pod.get("status") or {}).get("podIP"):
            return None
        return proxy_config_for(view, pod)

    async def poll(self, namespace: str, pod_name: str, applied: str,
                   wait: float) -> ProxyConfig | None:
        """The proxy's config once it differs from ``applied`` (None after ``wait``)."""
        key = (namespace, pod_name)
        sync = self.proxies.get(key)
        if sync is None:
            pod = self.view.local_cluster.pod(namespace, pod_name) or {}
            kind = "router" if proxy_mode(pod) != "sidecar" else "sidecar"
            sync = self.proxies[key] = ProxySync(self.cluster, namespace, pod_name, kind)
        sync.last_seen = time.monotonic()
        if applied and applied != sync.acked:
            sync.acked = applied
            if applied == sync.sent:
                start = self.generation_started.get(sync.sent_generation)
                if start is not None:
                    self.metrics.converged(time.monotonic() - start)
        deadline = time.monotonic() + wait
        while True:
            generation = self.generation
            config = self.config_for(namespace, pod_name)
            if config is not None and config.version != applied:
                if config.version != sync.sent:
                    sync.sent, sync.sent_generation = config.version, generation
                return config
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            async with self._pushed:
                try:
                    await asyncio.wait_for(
                        self._pushed.wait_for(lambda: self.generation != generation), remaining)
                except TimeoutError:
                    return None

    async def pushed_after(self, generation: int, timeout: float) -> int:
        """The generation once it is past ``generation``, or the current one after
        ``timeout``."""
        async with self._pushed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._pushed.wait_for(lambda: self.generation != generation), timeout)
        return self.generation

    def connected(self, within: float = 45.0) -> list[ProxySync]:
        now = time.monotonic()
        return [p for p in self.proxies.values() if now - p.last_seen <= within]
