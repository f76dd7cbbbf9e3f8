"""A two-cluster mesh of lab proxies on loopback, for the proxy's own tests.

``MeshHarness`` runs an asyncio loop in a background thread; on it run the
proxies (``meshproof.lab.mesh.proxy.Proxy``) and tiny aiohttp "helloworld"
apps, each pod on its own 127.x address. ``MiniIstiod`` is the stand-in for
the lab's istiod: it turns a small description (services, DestinationRules,
VirtualServices, PeerAuthentication, policies) into each proxy's
``ProxyConfig``; ``harness.push()`` applies the current description to every
proxy as a hot update. Tests talk to the mesh with ordinary blocking HTTP
clients, as an app would (``HTTP_PROXY=http://<pod IP>:15001``).
"""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from aiohttp import web

from meshproof import pki
from meshproof.lab.mesh.config import (
    AuthorizationPolicy,
    Certificate,
    ConnectionPool,
    EastWest,
    Endpoint,
    GatewayServer,
    HttpRoute,
    Identity,
    Inbound,
    InboundPort,
    Ingress,
    MtlsMode,
    OutboundCluster,
    OutlierDetection,
    ProxyConfig,
    StatsMatcher,
    VirtualHost,
    WanDelay,
    sni_for,
)
from meshproof.lab.mesh.proxy import Proxy

__all__ = [
    "ALL_STATS",
    "TD",
    "ClusterInfo",
    "DestinationRule",
    "HelloApp",
    "LoopThread",
    "MeshHarness",
    "MeshPki",
    "MiniIstiod",
    "Pod",
    "Service",
    "make_pki",
    "standard_mesh",
    "via_sidecar",
]

T = TypeVar("T")
TD = "cluster.local"
ALL_STATS = StatsMatcher(
    inclusion_regexps=[
        ".*outlier_detection.*",
        ".*upstream_rq_.*",
        ".*upstream_cx_.*",
        ".*ssl.*",
        ".*circuit_breakers.*",
        ".*membership_.*",
        ".*no_filter_chain_match.*",
    ]
)


class LoopThread:
    """An event loop in a daemon thread; ``run`` executes a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mesh-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@dataclass
class MeshPki:
    root: pki.CertKey
    intermediates: dict[str, pki.CertKey]
    foreign_root: pki.CertKey
    foreign_intermediate: pki.CertKey

    def workload(
        self,
        cluster: str,
        namespace: str,
        sa: str,
        *,
        foreign: bool = False,
        ttl: datetime.timedelta = datetime.timedelta(hours=24),
        not_before: datetime.datetime | None = None,
    ) -> Certificate:
        ca = self.foreign_intermediate if foreign else self.intermediates[cluster]
        root = self.foreign_root if foreign else self.root
        ck = pki.issue_workload_cert(
            ca, pki.spiffe_id(TD, namespace, sa), ttl=ttl, not_before=not_before
        )
        return Certificate(
            cert_chain_pem=ck.chain_pem().decode(),
            key_pem=ck.key_pem().decode(),
            root_bundle_pem=root.cert_pem().decode(),
        )


def make_pki(clusters: tuple[str, ...] = ("aws-eks", "gcp-gke")) -> MeshPki:
    root = pki.make_root_ca()
    foreign = pki.make_root_ca(common_name="foreign root CA", org="elsewhere")
    return MeshPki(
        root=root,
        intermediates={c: pki.make_intermediate_ca(root, c) for c in clusters},
        foreign_root=foreign,
        foreign_intermediate=pki.make_intermediate_ca(foreign, "foreign"),
    )


class HelloApp:
    """helloworld-like app: /hello, /headers, /echo, /chunked, /status/<code>;
    ``fail_status`` / ``delay`` switches."""

    def __init__(self, pod: Pod) -> None:
        self.pod = pod
        self.fail_status: int | None = None
        self.delay = 0.0
        self.hits = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_status is not None:
            return web.Response(status=self.fail_status, text="failing on purpose\n")
        path = request.path
        if path.startswith("/status/"):
            return web.Response(status=int(path.rsplit("/", 1)[1]), text="status\n")
        if path == "/headers":
            return web.json_response({"headers": dict(request.headers)})
        if path == "/echo":
            return web.Response(body=await request.read())
        if path == "/chunked":
            stream = web.StreamResponse()
            stream.enable_chunked_encoding()
            await stream.prepare(request)
            for i in range(3):
                await stream.write(f"part {i}\n".encode())
            await stream.write_eof()
            return stream  # type: ignore[return-value]
        return web.Response(
            text=f"Hello version: {self.pod.version}, instance: {self.pod.name}, "
            f"cluster: {self.pod.cluster}\n"
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for private in self.pod.ports.values():
            await web.TCPSite(self._runner, self.pod.ip, private).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Pod:
    name: str
    cluster: str
    ip: str
    namespace: str = "sample"
    sa: str = "default"
    app: str = ""
    version: str = "v1"
    ports: dict[int, int] = field(default_factory=dict)
    """Service target port → the app's private port."""
    mode: str = "sidecar"
    cert: Certificate | None = None
    proxy: Proxy | None = None
    app_server: HelloApp | None = None
    logs: list[str] = field(default_factory=list)

    @property
    def spiffe(self) -> str:
        return f"spiffe://{TD}/ns/{self.namespace}/sa/{self.sa}"


@dataclass
class ClusterInfo:
    name: str
    network: str
    region: str
    zone: str
    eastwest_ip: str = ""


@dataclass
class Service:
    name: str
    namespace: str
    port: int
    target_port: int
    app: str

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


@dataclass
class DestinationRule:
    subsets: dict[str, dict[str, str]] = field(default_factory=dict)
    pool: ConnectionPool = field(default_factory=ConnectionPool)
    outlier: OutlierDetection | None = None


@dataclass
class MiniIstiod:
    """Builds each proxy's config from a small mesh description, as the lab's istiod will."""

    clusters: dict[str, ClusterInfo]
    pods: list[Pod] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    mtls: dict[str, MtlsMode] = field(default_factory=dict)
    """Namespace (or ``ns/app``) → mode; default PERMISSIVE."""
    destination_rules: dict[str, DestinationRule] = field(default_factory=dict)
    virtual_services: dict[str, list[HttpRoute]] = field(default_factory=dict)
    policies: dict[str, list[AuthorizationPolicy]] = field(default_factory=dict)
    """``ns/app`` → policies."""
    stats_matcher: StatsMatcher = field(default_factory=lambda: ALL_STATS)
    wan_delay: WanDelay = field(default_factory=WanDelay)
    gateway_servers: list[GatewayServer] = field(default_factory=list)
    gateway_routes: list[VirtualHost] = field(default_factory=list)
    version: int = 0

    def _identity(self, pod: Pod) -> Identity:
        c = self.clusters[pod.cluster]
        return Identity(
            cluster=pod.cluster,
            network=c.network,
            namespace=pod.namespace,
            workload=f"{pod.app or pod.name}-{pod.version}"
            if pod.mode == "sidecar"
            else (pod.app or pod.name),
            service_account=pod.sa,
            pod_ip=pod.ip,
            pod_name=pod.name,
            app=pod.app or pod.name,
            version=pod.version,
            region=c.region,
            zone=c.zone,
            trust_domain=TD,
        )

    def _matching(self, svc: Service, labels: dict[str, str]) -> list[Pod]:
        return [
            p
            for p in self.pods
            if p.mode == "sidecar"
            and p.app == svc.app
            and p.namespace == svc.namespace
            and all({"version": p.version, "app": p.app}.get(k) == v for k, v in labels.items())
        ]

    def _clusters_for(self, me: Pod, *, local_only: bool) -> list[OutboundCluster]:
        out = []
        for svc in self.services.values():
            dr = self.destination_rules.get(svc.fqdn, DestinationRule())
            for subset, labels in [("", {}), *dr.subsets.items()]:
                pods = self._matching(svc, labels)
                eps = [
                    Endpoint(
                        address=p.ip,
                        port=svc.target_port,
                        cluster=p.cluster,
                        network=self.clusters[p.cluster].network,
                        region=self.clusters[p.cluster].region,
                        zone=self.clusters[p.cluster].zone,
                        labels={
                            "app": p.app,
                            "version": p.version,
                            "workload": f"{p.app}-{p.version}",
                            "namespace": p.namespace,
                        },
                    )
                    for p in pods
                    if p.cluster == me.cluster
                ]
                if not local_only:
                    for cname, info in self.clusters.items():
                        remote = [p for p in pods if p.cluster == cname and cname != me.cluster]
                        if remote and info.eastwest_ip:
                            eps.append(
                                Endpoint(
                                    address=info.eastwest_ip,
                                    port=15443,
                                    cluster=cname,
                                    network=info.network,
                                    region=info.region,
                                    zone=info.zone,
                                    weight=len(remote),
                                    sni=sni_for(svc.port, svc.fqdn, subset),
                                    labels={"app": svc.app},
                                )
                            )
                out.append(
                    OutboundCluster(
                        service=svc.fqdn,
                        port=svc.port,
                        subset=subset,
                        endpoints=eps,
                        connection_pool=dr.pool,
                        outlier_detection=dr.outlier,
                        subject_alt_names=sorted({p.spiffe for p in pods}),
                    )
                )
        return out

    def config_for(self, pod: Pod) -> ProxyConfig:
        self.version += 1
        cfg = ProxyConfig(
            mode="sidecar",
            identity=self._identity(pod),
            version=f"v{self.version}",
            certificate=pod.cert,
            stats_matcher=self.stats_matcher,
        )
        if pod.mode == "eastwest":
            cfg.mode = "eastwest"
            cfg.clusters = self._clusters_for(pod, local_only=True)
            cfg.east_west = EastWest(wan_delay=self.wan_delay)
            return cfg
        cfg.clusters = self._clusters_for(pod, local_only=False)
        if pod.mode == "ingress":
            cfg.mode = "ingress"
            cfg.virtual_hosts = self.gateway_routes
            cfg.ingress = Ingress(servers=self.gateway_servers)
            return cfg
        cfg.virtual_hosts = [
            VirtualHost(
                domains=[svc.fqdn], port=svc.port, routes=self.virtual_services.get(svc.fqdn, [])
            )
            for svc in self.services.values()
        ]
        mode = self.mtls.get(
            f"{pod.namespace}/{pod.app}", self.mtls.get(pod.namespace, "PERMISSIVE")
        )
        served = {
            s.target_port: s.fqdn
            for s in self.services.values()
            if s.app == pod.app and s.namespace == pod.namespace
        }
        cfg.inbound = Inbound(
            ports=[
                InboundPort(port=t, app_port=p, mtls_mode=mode, service=served.get(t, ""))
                for t, p in pod.ports.items()
            ],
            policies=self.policies.get(f"{pod.namespace}/{pod.app}", []),
        )
        return cfg


class MeshHarness:
    """Pods (proxy + app) of a two-cluster mesh on loopback, run on a background loop."""

    def __init__(self, mesh_pki: MeshPki, *, net: int = 1) -> None:
        self.pki = mesh_pki
        self.loop = LoopThread()
        self.istiod = MiniIstiod(
            clusters={
                "aws-eks": ClusterInfo(
                    "aws-eks", "network1", "us-east-1", "us-east-1a", f"127.{net}.0.100"
                ),
                "gcp-gke": ClusterInfo(
                    "gcp-gke", "network2", "us-central1", "us-central1-a", f"127.{net + 1}.0.100"
                ),
            }
        )
        self._net = net
        self._running: list[Pod] = []

    def ip(self, cluster: str, host: int) -> str:
        base = self._net if cluster == "aws-eks" else self._net + 1
        return f"127.{base}.0.{host}"

    def add_service(
        self,
        name: str,
        *,
        port: int = 5000,
        target_port: int = 5000,
        app: str | None = None,
        namespace: str = "sample",
    ) -> Service:
        svc = Service(name, namespace, port, target_port, app or name)
        self.istiod.services[svc.fqdn] = svc
        return svc

    def add_pod(
        self,
        cluster: str,
        host: int,
        name: str,
        *,
        app: str = "",
        version: str = "v1",
        sa: str | None = None,
        namespace: str = "sample",
        ports: dict[int, int] | None = None,
        mode: str = "sidecar",
        foreign_cert: bool = False,
    ) -> Pod:
        pod = Pod(
            name=name,
            cluster=cluster,
            ip=self.ip(cluster, host),
            namespace=namespace,
            sa=sa or app or name,
            app=app,
            version=version,
            ports=ports or {},
            mode=mode,
        )
        if mode == "eastwest":
            pod.ip = self.istiod.clusters[cluster].eastwest_ip
            pod.namespace, pod.sa = "istio-system", "istio-eastwestgateway-service-account"
        pod.cert = self.pki.workload(cluster, pod.namespace, pod.sa, foreign=foreign_cert)
        self.istiod.pods.append(pod)
        return pod

    def start(self) -> None:
        """Start every pod's app and proxy, and push the first config."""

        async def go() -> None:
            for pod in self.istiod.pods:
                if pod.ports and pod.app_server is None:
                    pod.app_server = HelloApp(pod)
                    await pod.app_server.start()
                if pod.proxy is None:
                    pod.proxy = Proxy(pod_ip=pod.ip, log=pod.logs.append)
                    await pod.proxy.start()
                if pod not in self._running:
                    self._running.append(pod)
            await self._push()

        self.loop.run(go())

    async def _push(self) -> None:
        for pod in self.istiod.pods:
            assert pod.proxy is not None
            await pod.proxy.apply(self.istiod.config_for(pod))

    def push(self) -> None:
        """Apply the current mesh description to every proxy (a hot config update)."""
        self.loop.run(self._push())

    def close(self) -> None:
        async def go() -> None:
            # Pods a test removed from the mesh description are still running: stop them too.
            for pod in self._running:
                if pod.proxy is not None:
                    await pod.proxy.stop()
                if pod.app_server is not None:
                    await pod.app_server.stop()

        try:
            self.loop.run(go())
        finally:
            self.loop.close()

    # -- reading a proxy's admin ---------------------------------------------------------------

    def admin(self, pod: Pod, path: str) -> str:
        assert pod.proxy is not None
        r = requests.get(f"http://127.0.0.1:{pod.proxy.admin_port}{path}", timeout=10)
        r.raise_for_status()
        return r.text

    def stat(self, pod: Pod, name: str) -> int:
        """One value from ``/stats`` by exact text name (0 when absent)."""
        for line in self.admin(pod, "/stats").splitlines():
            key, _, value = line.rpartition(": ")
            if key == name:
                return int(value)
        return 0

    def metrics(self, pod: Pod, port: int = 15090) -> str:
        r = requests.get(f"http://{pod.ip}:{port}/stats/prometheus", timeout=10)
        r.raise_for_status()
        return r.text


def via_sidecar(
    pod: Pod,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    session: requests.Session | None = None,
    timeout: float = 10.0,
) -> requests.Response:
    """A request the pod's app makes with ``HTTP_PROXY=http://<pod IP>:15001``."""
    getter = session.get if session is not None else requests.get
    return getter(
        url, headers=headers or {}, timeout=timeout, proxies={"http": f"http://{pod.ip}:15001"}
    )


def standard_mesh(mesh_pki: MeshPki, *, net: int) -> tuple[MeshHarness, dict[str, Pod]]:
    """helloworld v1+v2 and a sleep client in aws-eks, helloworld v1 and sleep in gcp-gke,
    an east-west gateway in each; not started (tests adjust ``harness.istiod`` first)."""
    h = MeshHarness(mesh_pki, net=net)
    h.add_service("helloworld")
    pods = {
        "sleep": h.add_pod("aws-eks", 10, "sleep-7f8c9", app="sleep"),
        "v1": h.add_pod(
            "aws-eks",
            11,
            "helloworld-v1-5d9f8",
            app="helloworld",
            version="v1",
            ports={5000: 25000},
        ),
        "v2": h.add_pod(
            "aws-eks",
            12,
            "helloworld-v2-6c4b7",
            app="helloworld",
            version="v2",
            ports={5000: 25000},
        ),
        "gcp_sleep": h.add_pod("gcp-gke", 10, "sleep-2a1b3", app="sleep"),
        "gcp_v1": h.add_pod(
            "gcp-gke",
            11,
            "helloworld-v1-9e8d7",
            app="helloworld",
            version="v1",
            ports={5000: 25000},
        ),
        "ew_aws": h.add_pod(
            "aws-eks",
            100,
            "istio-eastwestgateway-7d5c4",
            mode="eastwest",
            app="istio-eastwestgateway",
        ),
        "ew_gcp": h.add_pod(
            "gcp-gke",
            100,
            "istio-eastwestgateway-4b3a2",
            mode="eastwest",
            app="istio-eastwestgateway",
        ),
    }
    return h, pods
