"""One lab cluster: its object store, API server, kubelet, controllers and kube-proxy.

Address plan (DESIGN.md §3): aws-eks pods 127.1.x.x, services 127.11.x.x;
gcp-gke pods 127.2.x.x, services 127.12.x.x; the API server on 127.0.0.1 at a
port chosen at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshproof.lab.admission.webhooks import WebhookAdmission
from meshproof.lab.install.bootstrap import READER_USER
from meshproof.lab.kube.controllers import (
    NodeHeartbeat,
    ServiceProxy,
    node_object,
    start_controllers,
)
from meshproof.lab.kube.discovery import SERVER_VERSION
from meshproof.lab.kube.interfaces import AlreadyExists
from meshproof.lab.kube.kubelet.ipam import AddressPool
from meshproof.lab.kube.kubelet.runtime import Kubelet
from meshproof.lab.kube.server import ApiServer
from meshproof.lab.kube.servingcert import make_serving_cert
from meshproof.lab.kube.store import MemoryStore
from meshproof.lab.state import ClusterEndpoint

__all__ = ["PROFILES", "ClusterProfile", "LabCluster"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClusterProfile:
    """What differs between the lab's clusters."""

    name: str
    region: str
    zone: str
    pod_prefix: str
    """First two octets of the pod range, e.g. ``127.1``."""
    service_prefix: str
    network: str

    @property
    def node_name(self) -> str:
        return f"{self.name}-control-plane"

    @property
    def node_ip(self) -> str:
        """The node's address: the first of the pod range (pods start after it)."""
        return f"{self.pod_prefix}.0.1"


PROFILES: dict[str, ClusterProfile] = {
    "aws-eks": ClusterProfile("aws-eks", "us-east-1", "us-east-1a", "127.1", "127.11",
                              "network1"),
    "gcp-gke": ClusterProfile("gcp-gke", "us-central1", "us-central1-a", "127.2", "127.12",
                              "network2"),
}


class LabCluster:
    """Runs one cluster on the current asyncio loop."""

    def __init__(self, profile: ClusterProfile, *, lab_dir: Path, token: str | None = None
                 ) -> None:
        self.profile = profile
        self.lab_dir = lab_dir
        self.token = token or secrets.token_urlsafe(32)
        # A random /20 of the service range: two labs on one machine rarely share clusterIPs.
        # Its first address is the `kubernetes` Service's, as in a real service CIDR.
        block = 16 * secrets.randbelow(16)
        self.service_cidr = f"{profile.service_prefix}.{block}.0/20"
        self.kubernetes_service_ip = f"{profile.service_prefix}.{block}.1"
        self.store = MemoryStore(profile.name, service_cidr=self.service_cidr)
        self.cert = make_serving_cert(profile.name)
        # What a remote secret carries: istio-reader-service-account's token of this cluster.
        self.reader_token = secrets.token_urlsafe(32)
        self.server = ApiServer(self.store, tokens={self.token: "lab-admin",
                                                    self.reader_token: READER_USER},
                                request_log=lab_dir / "logs" / f"{profile.name}-requests.log")
        # MutatingWebhookConfigurations (Istio's sidecar injector) are called on writes.
        self.store.add_admission_hook(WebhookAdmission(self.store))
        self.proxy = ServiceProxy()
        self.kubelet: Kubelet | None = None
        self.url = ""
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def name(self) -> str:
        return self.profile.name

    @property
    def ca_pem(self) -> bytes:
        """The CA of this cluster's API server certificate."""
        return self.cert.ca_pem

    def endpoint(self) -> ClusterEndpoint:
        return ClusterEndpoint(self.name, self.url, self.token, self.cert.ca_pem,
                               self.profile.network)

    async def start(self) -> str:
        """Serve the API, register the node, start kubelet and controllers; returns the URL."""
        p = self.profile
        self.url = await self.server.start("127.0.0.1", 0,
                                           ssl_context=self.cert.server_context())
        port = int(self.url.rsplit(":", 1)[1])
        self.kubelet = Kubelet(
            self.store, cluster=p.name, node_name=p.node_name, node_ip=p.node_ip,
            pod_pool=AddressPool(p.pod_prefix, reserved=(p.node_ip,),
                                 start=secrets.randbelow(200 * 254)),
            lab_dir=self.lab_dir,
            ca_pem=self.cert.ca_pem, api_host="127.0.0.1", api_port=port)
        self.server.runtime = self.kubelet
        # Pods call the API with their service-account tokens (in-cluster config).
        self.server.add_authenticator(self.kubelet.tokens.authenticate)
        heartbeat = NodeHeartbeat(self.store, node_object(
            p.node_name, region=p.region, zone=p.zone, ip=p.node_ip,
            pod_cidr=f"{p.pod_prefix}.0.0/16", kubelet_version=SERVER_VERSION["gitVersion"]))
        await heartbeat.ensure()
        await self._kubernetes_service(port)
        self._tasks = [asyncio.create_task(self.kubelet.run(), name=f"{p.name}/kubelet"),
                       asyncio.create_task(heartbeat.run(), name=f"{p.name}/node")]
        self._tasks += start_controllers(self.store, cluster=p.name, node_name=p.node_name,
                                         zone=p.zone, proxy=self.proxy)
        return self.url

    async def _kubernetes_service(self, port: int) -> None:
        """``default/kubernetes``: the API server behind a clusterIP, as in every cluster."""
        svc_res = self.store.kind_for("v1", "Service")
        ep_res = self.store.kind_for("v1", "Endpoints")
        labels = {"component": "apiserver", "provider": "kubernetes"}
        with contextlib.suppress(AlreadyExists):
            await self.store.create(svc_res, {
                "metadata": {"name": "kubernetes", "labels": labels},
                "spec": {"clusterIP": self.kubernetes_service_ip, "ports": [
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
            }, namespace="default")
        with contextlib.suppress(AlreadyExists):
            await self.store.create(ep_res, {
                "metadata": {"name": "kubernetes", "labels": labels},
                "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                             "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
            }, namespace="default")

    async def stop(self) -> None:
        """Stop pods first (they may still talk to the API), then everything else."""
        if self.kubelet is not None:
            await self.kubelet.stop(grace=2.0)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.proxy.close()
        await self.server.stop()
        await self.store.close()
