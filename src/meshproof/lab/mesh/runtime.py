"""The proxy's live state, shared by its listeners: config, clusters, TLS, stats and logs.

``Runtime.apply`` swaps in a new config the way xDS updates Envoy: clusters
that remain keep their hosts' health, connections and stats; a push without
a certificate keeps the current one; a certificate that fails to load is
rejected and the previous config stays in force.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import os
import ssl
import sys
import time
from collections.abc import Callable

from meshproof.errors import LabError
from meshproof.lab.mesh.config import (
    AppProbe,
    Certificate,
    Identity,
    InboundPort,
    OutboundCluster,
    ProxyConfig,
    cluster_name,
    parse_sni,
    sni_for,
)
from meshproof.lab.mesh.metrics import IstioMetrics
from meshproof.lab.mesh.routing import RouteTable
from meshproof.lab.mesh.stats import EnvoyStats
from meshproof.lab.mesh.tls import cert_not_after, client_mtls_context, server_mtls_context
from meshproof.lab.mesh.upstream import UpstreamCluster

__all__ = ["ENVOY_VERSION", "INBOUND_LISTENER", "Runtime"]

INBOUND_LISTENER = "0.0.0.0_15006"
"""Envoy's inbound listener address in stat names (all inbound traffic lands on 15006)."""
INBOUND_SSL_STATS = ("handshake", "connection_error", "no_certificate", "fail_verify_no_cert",
                     "fail_verify_error", "fail_verify_san")
"""The inbound listener's TLS counters (FACTS.md "Envoy stats")."""

ENVOY_VERSION = "meshproof-lab/1.31/Clean/RELEASE/BoringSSL"


class Runtime:
    """Everything a listener needs to handle a connection."""

    def __init__(self, *, log: Callable[[str], None] | None = None) -> None:
        self.config: ProxyConfig | None = None
        self.cert: Certificate | None = None
        self.cert_expiry: datetime.datetime | None = None
        self.server_ctx: ssl.SSLContext | None = None
        self.client_ctx: ssl.SSLContext | None = None
        self.stats = EnvoyStats()
        self.metrics = IstioMetrics()
        self.clusters: dict[str, UpstreamCluster] = {}
        self.routes = RouteTable([])
        self.started = time.time()
        self.applied_versions = 0
        self.app_idle: dict[
            tuple[str, int], list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        ] = {}
        """Idle keep-alive connections to the app, by (address, port)."""
        self.extra_probers: dict[str, AppProbe] = {}
        """App probes from the pod spec (``ISTIO_KUBE_APP_PROBERS``); the config's add to them."""
        self.recent_log: collections.deque[str] = collections.deque(maxlen=500)
        self.draining = False
        """Set by pilot-agent's ``POST /drain`` (a native sidecar's preStop hook)."""
        self._log = log or _stdout
        self.stats.set_gauge("", "", "server.state", 1)  # PRE_INITIALIZING until a config arrives
        self.stats.set_gauge("", "", "server.live", 0)

    # -- config --------------------------------------------------------------------------------

    @property
    def identity(self) -> Identity:
        if self.config is None:
            raise LabError("the proxy has no config yet")
        return self.config.identity

    def apply(self, config: ProxyConfig) -> None:
        """Make ``config`` current; raises ``LabError`` (and keeps the old one) if it cannot."""
        cert = config.certificate or self.cert
        what = f"proxy {config.identity.pod_name or config.identity.workload}.{config.identity.namespace} in cluster {config.identity.cluster}"
        server_ctx, client_ctx, expiry = self.server_ctx, self.client_ctx, self.cert_expiry
        if cert is not None and cert != self.cert:
            server_ctx = server_mtls_context(cert, what=what)
            client_ctx = client_mtls_context(cert, what=what)
            expiry = cert_not_after(cert.cert_chain_pem)
        clusters: dict[str, UpstreamCluster] = {}
        for oc in config.clusters:
            name = self.stat_cluster_name(config, oc)
            existing = self.clusters.pop(name, None)
            if existing is not None:
                existing.identity = config.identity
                existing.update(oc)
                clusters[name] = existing
            else:
                clusters[name] = UpstreamCluster(oc, self.stats, config.identity, name=name)
        for name, gone in self.clusters.items():
            gone.close()
            self.stats.drop_scope("cluster", name)
        self.clusters = clusters
        self.config = config
        self.cert, self.server_ctx, self.client_ctx, self.cert_expiry = (
            cert,
            server_ctx,
            client_ctx,
            expiry,
        )
        self.routes = RouteTable(config.virtual_hosts)
        if server_ctx is not None and config.inbound.ports:
            # Envoy declares a TLS context's counters as one stats struct, created with the
            # context (envoyproxy/envoy docs/root/_include/ssl_stats.rst lists them under
            # listener.<address>.ssl.*), so they exist at 0 before the first handshake.
            for stat in INBOUND_SSL_STATS:
                self.stats.touch_counter("listener", INBOUND_LISTENER, f"ssl.{stat}")
        self.stats.set_matcher(config.stats_matcher)
        self.applied_versions += 1
        self.stats.set_gauge("", "", "server.state", 0)  # LIVE
        self.stats.set_gauge("", "", "server.live", 1)
        self.stats.inc("", "", "cluster_manager.cds.update_success")
        self.stats.inc("", "", "listener_manager.lds.update_success")
        self.stats.set_gauge("", "", "cluster_manager.active_clusters", len(clusters))

    @staticmethod
    def stat_cluster_name(config: ProxyConfig, oc: OutboundCluster) -> str:
        # The east-west gateway's clusters are the SNI-named ones AUTO_PASSTHROUGH makes.
        if config.mode == "eastwest":
            return sni_for(oc.port, oc.service, oc.subset)
        return oc.name

    def cluster_for(self, port: int, fqdn: str, subset: str = "") -> UpstreamCluster | None:
        return self.clusters.get(cluster_name(port, fqdn, subset))

    def cluster_for_sni(self, sni: str) -> UpstreamCluster | None:
        if parse_sni(sni) is None:
            return None
        return self.clusters.get(sni)

    def inbound_port(self, port: int) -> InboundPort | None:
        if self.config is None:
            return None
        return next((p for p in self.config.inbound.ports if p.port == port), None)

    def close_connections(self) -> None:
        """Close pooled connections (upstream clusters and the app)."""
        for cluster in self.clusters.values():
            cluster.close()
        for conns in self.app_idle.values():
            for _, writer in conns:
                writer.close()
        self.app_idle.clear()

    def refresh_server_gauges(self) -> None:
        """``server.memory_allocated`` / ``memory_heap_size`` / ``uptime``: the lab proxy's
        resident memory stands for Envoy's allocated heap."""
        rss = _resident_bytes()
        self.stats.set_gauge("", "", "server.memory_allocated", rss)
        self.stats.set_gauge("", "", "server.memory_heap_size", rss)
        self.stats.set_gauge("", "", "server.uptime", int(time.time() - self.started))

    # -- health --------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        """Readiness as 15021 reports it: a config, and a certificate that has not expired."""
        if self.config is None:
            return False, "no config received from istiod yet"
        if self.draining:
            return False, "Envoy is draining"
        if self.cert is None:
            # AUTO_PASSTHROUGH never terminates TLS, so an east-west gateway is ready without one.
            if self.config.mode == "eastwest":
                return True, ""
            return False, "no workload certificate"
        if self.cert_expiry is not None and self.cert_expiry <= datetime.datetime.now(datetime.UTC):
            return False, f"workload certificate expired at {self.cert_expiry.isoformat()}"
        return True, ""

    # -- logging -------------------------------------------------------------------------------

    def log(self, line: str) -> None:
        self.recent_log.append(line)
        self._log(line)


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
