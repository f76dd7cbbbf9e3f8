"""One outbound cluster at run time: its hosts, load balancing, circuit breakers and connections.

Load balancing: without outlier detection every endpoint is in one priority
(Istio turns locality LB off then, so traffic spreads over both clusters);
with it, endpoints are ranked by locality against the proxy's own (same
region and zone → 0, same region → 1, else 2; the cluster name stands in for
an empty region) and load spills to the next priority as Envoy computes it
with its overprovisioning factor 1.4. Inside a priority, smooth weighted
round robin. Ejected hosts and hosts EDS sent as UNHEALTHY are skipped (Istio turns the
panic threshold off when it sends unhealthy endpoints, so they stay out even when no
healthy host is left); with none left: no healthy upstream.

Circuit breakers (Envoy's ``default`` priority) are per cluster; connections
are pooled per host and reused (HTTP/1.1 keep-alive). A request that finds
``max_connections`` in use waits as pending, up to
``http1_max_pending_requests``; beyond that it overflows (local 503 UO).
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections import deque
from dataclasses import dataclass, field

from meshproof.lab.mesh.config import Endpoint, Identity, OutboundCluster
from meshproof.lab.mesh.outlier import HostHealth, OutlierDetector
from meshproof.lab.mesh.stats import EnvoyStats
from meshproof.lab.mesh.tls import PeerIdentity, classify_handshake_error, peer_identity

__all__ = [
    "OVERPROVISIONING",
    "ConnectFailure",
    "Host",
    "Overflow",
    "UpstreamCluster",
    "UpstreamConn",
]

OVERPROVISIONING = 1.4


class Overflow(Exception):
    """A circuit breaker is open: the request is shed with 503 UO."""


class ConnectFailure(Exception):
    """The upstream connection (TCP or TLS) could not be made."""


@dataclass(slots=True)
class UpstreamConn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: PeerIdentity | None
    requests: int = 0

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


@dataclass(slots=True)
class Host:
    endpoint: Endpoint
    health: HostHealth = field(default_factory=HostHealth)
    cx_active: int = 0
    cx_total: int = 0
    cx_connect_fail: int = 0
    rq_active: int = 0
    rq_success: int = 0
    rq_error: int = 0
    rq_timeout: int = 0
    rq_total: int = 0
    current_weight: float = 0.0
    idle: list[UpstreamConn] = field(default_factory=list)
    waiters: deque[asyncio.Future[UpstreamConn | None]] = field(default_factory=deque)

    @property
    def key(self) -> str:
        return f"{self.endpoint.address}:{self.endpoint.port}"

    @property
    def eds_unhealthy(self) -> bool:
        """EDS said UNHEALTHY: Envoy's ``FAILED_EDS_HEALTH`` flag."""
        return self.endpoint.health_status == "UNHEALTHY"

    @property
    def healthy(self) -> bool:
        """Routable: neither ejected by outlier detection nor unhealthy by EDS."""
        return not self.health.ejected and not self.eds_unhealthy


class UpstreamCluster:
    """Hosts and connection pool of one ``outbound|…`` (or gateway) cluster."""

    def __init__(
        self, config: OutboundCluster, stats: EnvoyStats, identity: Identity, *, name: str = ""
    ) -> None:
        self.name = name or config.name
        self.config = config
        self.stats = stats
        self.identity = identity
        self.hosts: list[Host] = []
        self.detector = OutlierDetector(self.name, config.outlier_detection, stats)
        self.cx_active = 0
        self.rq_active = 0
        self.pending = 0
        self.retries_active = 0
        for stat in (
            "upstream_rq_total",
            "upstream_cx_total",
            "upstream_cx_overflow",
            "upstream_rq_pending_overflow",
            "upstream_cx_connect_fail",
            "upstream_rq_retry",
            "upstream_rq_retry_overflow",
            "upstream_rq_timeout",
        ):
            stats.touch_counter("cluster", self.name, stat)
        self.update(config)

    # -- configuration -------------------------------------------------------------------------

    def update(self, config: OutboundCluster) -> None:
        """New endpoints/settings; hosts that stay keep their health and connections."""
        self.config = config
        self.detector.update(config.outlier_detection)
        old = {h.key: h for h in self.hosts}
        hosts = []
        for ep in config.endpoints:
            key = f"{ep.address}:{ep.port}"
            host = old.pop(key, None) or Host(endpoint=ep)
            host.endpoint = ep
            hosts.append(host)
        for gone in old.values():
            for conn in gone.idle:
                conn.close()
        self.hosts = hosts
        self._gauges()

    def close(self) -> None:
        for host in self.hosts:
            for conn in host.idle:
                conn.close()
            host.idle.clear()

    def _gauges(self) -> None:
        self.detector.refresh([h.health for h in self.hosts])
        healthy = sum(1 for h in self.hosts if h.healthy)
        self.stats.set_gauge("cluster", self.name, "membership_total", len(self.hosts))
        self.stats.set_gauge("cluster", self.name, "membership_healthy", healthy)
        self.stats.set_gauge("cluster", self.name, "upstream_cx_active", self.cx_active)
        self.stats.set_gauge("cluster", self.name, "upstream_rq_active", self.rq_active)
        self.stats.set_gauge("cluster", self.name, "upstream_rq_pending_active", self.pending)
        pool = self.config.connection_pool
        for stat, is_open in (
            ("cx_open", self.cx_active >= pool.max_connections),
            ("rq_pending_open", self.pending >= pool.http1_max_pending_requests),
            ("rq_open", self.rq_active >= pool.http2_max_requests),
            ("rq_retry_open", self.retries_active >= pool.max_retries),
        ):
            self.stats.set_gauge(
                "cluster", self.name, f"circuit_breakers.default.{stat}", int(is_open)
            )

    # -- load balancing ------------------------------------------------------------------------

    def priority(self, ep: Endpoint) -> int:
        me = self.identity
        my_region = me.region or me.cluster
        region = ep.region or ep.cluster
        if region != my_region:
            return 2
        return 0 if ep.zone == me.zone else 1

    def pick(self, exclude: frozenset[str] = frozenset()) -> Host | None:
        """The next host to try, or None when no healthy host is left (UH)."""
        self._gauges()
        healthy = [h for h in self.hosts if h.healthy]
        if not healthy:
            return None
        preferred = [h for h in healthy if h.key not in exclude] or healthy
        if self.config.outlier_detection is None or not self.config.locality_lb:
            return self._round_robin(preferred)
        levels: dict[int, list[Host]] = {}
        totals: dict[int, int] = {}
        for h in self.hosts:
            p = self.priority(h.endpoint)
            totals[p] = totals.get(p, 0) + 1
            if h in preferred:
                levels.setdefault(p, []).append(h)
        load_left = 100.0
        loads: list[tuple[int, float]] = []
        for p in sorted(totals):
            health = min(100.0, OVERPROVISIONING * 100.0 * len(levels.get(p, [])) / totals[p])
            share = min(load_left, health)
            if share > 0:
                loads.append((p, share))
            load_left -= share
        if not loads:
            return None
        roll = random.uniform(0, sum(s for _, s in loads))
        for p, share in loads:
            if roll <= share:
                return self._round_robin(levels[p])
            roll -= share
        return self._round_robin(levels[loads[-1][0]])

    @staticmethod
    def _round_robin(hosts: list[Host]) -> Host:
        # nginx's smooth weighted round robin: deterministic and exact over a cycle.
        total = 0.0
        best = hosts[0]
        for h in hosts:
            w = max(1, h.endpoint.weight)
            h.current_weight += w
            total += w
            if h.current_weight > best.current_weight:
                best = h
        best.current_weight -= total
        return best

    def record(self, host: Host, status: int | None) -> None:
        """Tell the outlier detector how an attempt on ``host`` ended."""
        self.detector.record(host.health, status, [h.health for h in self.hosts])
        self._gauges()

    # -- connections ---------------------------------------------------------------------------

    def begin_request(self) -> None:
        """Account one active request, or raise ``Overflow`` (``max_requests`` breaker)."""
        if self.rq_active >= self.config.connection_pool.http2_max_requests:
            self.stats.cluster_inc(self.name, "upstream_rq_pending_overflow")
            raise Overflow(self.name)
        self.rq_active += 1
        self._gauges()

    def end_request(self) -> None:
        self.rq_active -= 1
        self._gauges()

    async def acquire(
        self, host: Host, ssl_ctx: ssl.SSLContext | None, *, sni: str, local_addr: str
    ) -> UpstreamConn:
        """A connection to ``host``: an idle one, a new one, or one freed while pending."""
        while host.idle:
            conn = host.idle.pop()
            if conn.usable():
                return conn
            self._closed(host, conn)
        pool = self.config.connection_pool
        if self.cx_active >= pool.max_connections:
            self._evict_idle()
        if self.cx_active >= pool.max_connections:
            self.stats.cluster_inc(self.name, "upstream_cx_overflow")
            if self.pending >= pool.http1_max_pending_requests:
                self.stats.cluster_inc(self.name, "upstream_rq_pending_overflow")
                self._gauges()
                raise Overflow(self.name)
            fut: asyncio.Future[UpstreamConn | None] = asyncio.get_running_loop().create_future()
            host.waiters.append(fut)
            self.pending += 1
            self._gauges()
            try:
                handed = await fut
            except asyncio.CancelledError:
                # Cancelled (e.g. a route timeout) just as a connection or slot was handed
                # over: pass it on rather than lose it.
                if fut.done() and not fut.cancelled():
                    given = fut.result()
                    if given is not None:
                        self.release(host, given, reusable=True)
                    else:
                        self.cx_active -= 1
                        self._wake_any()
                raise
            finally:
                self.pending -= 1
                if fut in host.waiters:
                    host.waiters.remove(fut)
                self._gauges()
            if handed is not None:
                return handed
            # A connection slot was handed over: open a new connection in it.
            self.cx_active -= 1
        self.cx_active += 1
        try:
            return await self._connect(host, ssl_ctx, sni=sni, local_addr=local_addr)
        except BaseException:
            self.cx_active -= 1
            self._wake_any()
            raise

    async def _connect(
        self, host: Host, ssl_ctx: ssl.SSLContext | None, *, sni: str, local_addr: str
    ) -> UpstreamConn:
        ep = host.endpoint
        timeout = self.config.connection_pool.connect_timeout
        self.stats.cluster_inc(self.name, "upstream_cx_total")
        host.cx_total += 1
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    ep.address,
                    ep.port,
                    ssl=ssl_ctx,
                    server_hostname=(sni or None) if ssl_ctx is not None else None,
                    local_addr=(local_addr, 0) if local_addr else None,
                ),
                timeout,
            )
        except ssl.SSLError as exc:
            self._connect_failed(host, ["connection_error", *classify_handshake_error(exc)])
            raise ConnectFailure(f"TLS handshake with {host.key} failed: {exc}") from exc
        except (TimeoutError, OSError) as exc:
            self._connect_failed(host, [])
            raise ConnectFailure(f"connect to {host.key} failed: {exc!r}") from exc
        peer = peer_identity(writer.get_extra_info("ssl_object")) if ssl_ctx else None
        sans = self.config.subject_alt_names
        if ssl_ctx is not None and sans and (peer is None or peer.spiffe not in sans):
            writer.close()
            self._connect_failed(host, ["connection_error", "fail_verify_san"])
            raise ConnectFailure(
                f"peer {host.key} presented {peer.spiffe if peer else 'no certificate'}, "
                f"expected one of {', '.join(sans)}"
            )
        if ssl_ctx is not None:
            self.stats.cluster_inc(self.name, "ssl.handshake")
        host.cx_active += 1
        self._gauges()
        return UpstreamConn(reader=reader, writer=writer, peer=peer)

    def _connect_failed(self, host: Host, ssl_stats: list[str]) -> None:
        host.cx_connect_fail += 1
        self.stats.cluster_inc(self.name, "upstream_cx_connect_fail")
        for stat in ssl_stats:
            self.stats.cluster_inc(self.name, f"ssl.{stat}")

    def release(self, host: Host, conn: UpstreamConn, *, reusable: bool) -> None:
        """Give a connection back after a request: to a pending request, the idle list, or close."""
        conn.requests += 1
        limit = self.config.connection_pool.max_requests_per_connection
        if limit and conn.requests >= limit:
            reusable = False
        if reusable and conn.usable():
            while host.waiters:
                fut = host.waiters.popleft()
                if not fut.done():
                    fut.set_result(conn)
                    return
            host.idle.append(conn)
            return
        conn.close()
        self._closed(host, conn)

    def _closed(self, host: Host, conn: UpstreamConn) -> None:
        conn.close()
        host.cx_active -= 1
        self.cx_active -= 1
        self._wake_any(first=host)
        self._gauges()

    def _evict_idle(self) -> None:
        """Close one idle connection (to any host) so that its slot can serve another host."""
        for h in self.hosts:
            if h.idle:
                conn = h.idle.pop()
                conn.close()
                h.cx_active -= 1
                self.cx_active -= 1
                return

    def _wake_any(self, first: Host | None = None) -> None:
        """A connection slot is free: let one pending request (any host) open a connection."""
        order = ([first] if first else []) + [h for h in self.hosts if h is not first]
        for h in order:
            while h.waiters:
                fut = h.waiters.popleft()
                if not fut.done():
                    self.cx_active += 1  # reserved for the waiter; it re-counts on connect
                    fut.set_result(None)
                    return
