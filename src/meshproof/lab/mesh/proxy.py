"""The lab's proxy program (image ``istio/proxyv2``): sidecar, east-west or ingress gateway.

``Proxy`` owns the listeners of one pod; ``apply(config)`` makes a pushed
config current and opens/closes listeners to match. ``run_proxy`` pulls
configs from a ``ConfigSource`` (istiod over HTTP, or a file) and keeps the
last good config and certificate whenever the source is down, as a real
sidecar keeps serving while istiod is away.

Ports, all on the pod IP except admin:

===========  ==============================================================
15001        sidecar outbound, an HTTP forward proxy for the app
15006 + the  sidecar inbound (mTLS / plaintext per PeerAuthentication)
workload's
ports
15443        east-west gateway, SNI passthrough
Gateway      ingress gateway servers (HTTP / HTTPS)
ports
15021        ``/healthz/ready``
15020        merged ``/stats/prometheus``
15090        Envoy ``/stats/prometheus``
15000        admin, on 127.0.0.1 at a port recorded in ``<pod dir>/admin.port``
===========  ==============================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from meshproof.errors import ConfigError, LabError, TargetUnreachable
from meshproof.lab.mesh.admin import admin_handler, health_handler, metrics_handler
from meshproof.lab.mesh.config import AppProbe, ProxyConfig
from meshproof.lab.mesh.gateway import accept_east_west, accept_ingress, ingress_tls_context
from meshproof.lab.mesh.http1 import Headers, HttpParseError, Request, read_response
from meshproof.lab.mesh.inbound import accept_inbound
from meshproof.lab.mesh.netio import HttpServer, RawListener
from meshproof.lab.mesh.outbound import accept_outbound
from meshproof.lab.mesh.runtime import Runtime

__all__ = [
    "ADMIN_PORT_FILE",
    "ENVOY_METRICS_PORT",
    "HEALTH_PORT",
    "INBOUND_PORT",
    "MERGED_METRICS_PORT",
    "OUTBOUND_PORT",
    "ConfigSource",
    "FileConfigSource",
    "HttpConfigSource",
    "Proxy",
    "run_proxy",
]

OUTBOUND_PORT = 15001
INBOUND_PORT = 15006
HEALTH_PORT = 15021
MERGED_METRICS_PORT = 15020
ENVOY_METRICS_PORT = 15090
ADMIN_PORT_FILE = "admin.port"

_Listener = RawListener | HttpServer


class Proxy:
    """One pod's proxy. ``await start()``, ``await apply(config)``, ``await stop()``."""

    def __init__(
        self,
        *,
        pod_ip: str | None = None,
        pod_dir: Path | None = None,
        admin_port: int = 0,
        log: Callable[[str], None] | None = None,
        app_probers: dict[str, AppProbe] | None = None,
    ) -> None:
        self.runtime = Runtime(log=log)
        self.runtime.extra_probers = dict(app_probers or {})
        self.pod_ip = pod_ip
        self.pod_dir = pod_dir
        self._admin_port = admin_port
        self._listeners: dict[tuple[str, int], _Listener] = {}
        self._lock = asyncio.Lock()
        self._ingress_fingerprint: tuple[object, ...] = ()

    @property
    def admin_port(self) -> int:
        srv = self._listeners.get(("admin", 0))
        return srv.port if srv is not None else 0

    async def start(self) -> None:
        """Open the listeners that do not need a config (health, metrics, admin)."""
        async with self._lock:
            await self._ensure_base()

    async def _ensure_base(self) -> None:
        if self.pod_ip is None:
            return
        rt = self.runtime
        wanted: list[tuple[tuple[str, int], _Listener]] = [
            (
                ("health", HEALTH_PORT),
                HttpServer(
                    self.pod_ip,
                    HEALTH_PORT,
                    functools.partial(health_handler, rt),
                    what="proxy health",
                ),
            ),
            (
                ("metrics", MERGED_METRICS_PORT),
                HttpServer(
                    self.pod_ip,
                    MERGED_METRICS_PORT,
                    functools.partial(metrics_handler, rt),
                    what="merged metrics",
                ),
            ),
            (
                ("metrics", ENVOY_METRICS_PORT),
                HttpServer(
                    self.pod_ip,
                    ENVOY_METRICS_PORT,
                    functools.partial(metrics_handler, rt),
                    what="Envoy metrics",
                ),
            ),
            (
                ("admin", 0),
                HttpServer(
                    "127.0.0.1",
                    self._admin_port,
                    functools.partial(admin_handler, rt),
                    what="Envoy admin",
                ),
            ),
        ]
        for key, lst in wanted:
            if key not in self._listeners:
                await lst.start()
                self._listeners[key] = lst
        if self.pod_dir is not None:
            self.pod_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.pod_dir / (ADMIN_PORT_FILE + ".tmp")
            tmp.write_text(f"{self.admin_port}\n")
            os.replace(tmp, self.pod_dir / ADMIN_PORT_FILE)

    async def apply(self, config: ProxyConfig) -> None:
        """Make ``config`` current and reconcile listeners; on error the old config stays."""
        async with self._lock:
            if self.pod_ip is None:
                self.pod_ip = config.identity.pod_ip
            elif config.identity.pod_ip != self.pod_ip:
                raise ConfigError(
                    f"config {config.version!r} for {config.identity.workload} names pod IP "
                    f"{config.identity.pod_ip}, but this proxy runs on {self.pod_ip}"
                )
            self.runtime.apply(config)
            await self._ensure_base()
            await self._reconcile(config)

    async def _reconcile(self, config: ProxyConfig) -> None:
        assert self.pod_ip is not None
        rt = self.runtime
        ip = self.pod_ip
        wanted: dict[tuple[str, int], Callable[[], _Listener]] = {}

        def raw(kind: str, port: int, fn: Callable[[socket.socket], Awaitable[None]]) -> None:
            wanted[(kind, port)] = lambda: RawListener(ip, port, fn, what=f"{kind} port {port}")

        if config.mode == "sidecar":
            raw("outbound", OUTBOUND_PORT, functools.partial(accept_outbound, rt))
            for port in [INBOUND_PORT, *(p.port for p in config.inbound.ports)]:
                raw("inbound", port, functools.partial(_inbound, rt, port))
        elif config.mode == "eastwest":
            port = config.east_west.port
            raw("eastwest", port, functools.partial(_east_west, rt, port))
        else:
            by_port: dict[int, list] = {}
            for server in config.ingress.servers:
                by_port.setdefault(server.port, []).append(server)
            fingerprint = tuple(
                (s.port, s.protocol, s.tls_mode, s.cert_chain_pem, tuple(s.hosts))
                for s in config.ingress.servers
            )
            if fingerprint != self._ingress_fingerprint:
                # New certificates or servers: reopen the ingress listeners with new contexts.
                for key in [k for k in self._listeners if k[0] == "ingress"]:
                    await self._listeners.pop(key).close()
                self._ingress_fingerprint = fingerprint
            for port, servers in by_port.items():
                ctx = ingress_tls_context(servers, what=f"ingress gateway port {port}")
                raw("ingress", port, functools.partial(_ingress, rt, port, ctx))
        dynamic = {"outbound", "inbound", "eastwest", "ingress"}
        for key in [k for k in self._listeners if k[0] in dynamic and k not in wanted]:
            await self._listeners.pop(key).close()
        for key, make in wanted.items():
            if key not in self._listeners:
                lst = make()
                await lst.start()
                self._listeners[key] = lst

    async def stop(self) -> None:
        async with self._lock:
            for lst in list(self._listeners.values()):
                await lst.close()
            self._listeners.clear()
            self.runtime.close_connections()


async def _inbound(rt: Runtime, port: int, sock: socket.socket) -> None:
    await accept_inbound(rt, sock, port)


async def _east_west(rt: Runtime, port: int, sock: socket.socket) -> None:
    await accept_east_west(rt, sock, port)


async def _ingress(rt: Runtime, port: int, ctx: ssl.SSLContext | None, sock: socket.socket) -> None:
    await accept_ingress(rt, sock, port, ctx)


class ConfigSource(Protocol):
    """Where pushed configs come from."""

    async def fetch(self, current_version: str) -> ProxyConfig | None:
        """A config newer than ``current_version``, None when unchanged; raises
        ``TargetUnreachable`` when the source is down and ``ConfigError`` when it sends junk."""


class HttpConfigSource:
    """``GET <url>?version=<current>``: 200 with a JSON ``ProxyConfig``, or 304 when unchanged."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(f"proxy config URL {url!r}: expected http://host:port/path")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or 80
        self._path = (parts.path or "/") + (f"?{parts.query}&" if parts.query else "?")
        self._timeout = timeout

    async def fetch(self, current_version: str) -> ProxyConfig | None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port), self._timeout
            )
        except (TimeoutError, OSError) as exc:
            raise TargetUnreachable(f"istiod config endpoint {self.url}: {exc!r}") from exc
        try:
            req = Request(
                "GET",
                f"{self._path}version={current_version}",
                Headers([("host", f"{self._host}:{self._port}"), ("connection", "close")]),
            )
            writer.write(req.encode())
            await writer.drain()
            resp = await asyncio.wait_for(read_response(reader), self._timeout)
        except (TimeoutError, OSError, HttpParseError, asyncio.IncompleteReadError) as exc:
            raise TargetUnreachable(f"istiod config endpoint {self.url}: {exc!r}") from exc
        finally:
            writer.close()
        if resp.status == 304:
            return None
        if resp.status != 200:
            raise TargetUnreachable(f"istiod config endpoint {self.url} answered {resp.status}")
        config = ProxyConfig.from_json(resp.body)
        return None if config.version and config.version == current_version else config


class FileConfigSource:
    """A JSON file the lab rewrites; read again whenever its mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = 0.0

    async def fetch(self, current_version: str) -> ProxyConfig | None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            raise TargetUnreachable(f"proxy config file {self.path}: {exc}") from exc
        if mtime == self._mtime:
            return None
        config = ProxyConfig.from_json(self.path.read_bytes())
        self._mtime = mtime
        return None if config.version and config.version == current_version else config


async def run_proxy(
    config_source: ConfigSource,
    *,
    pod_ip: str | None = None,
    pod_dir: Path | None = None,
    poll_interval: float = 1.0,
    stop: asyncio.Event | None = None,
    log: Callable[[str], None] | None = None,
    app_probers: dict[str, AppProbe] | None = None,
) -> None:
    """Run a proxy until ``stop`` is set (or the task is cancelled)."""
    proxy = Proxy(pod_ip=pod_ip, pod_dir=pod_dir, log=log, app_probers=app_probers)
    stop = stop or asyncio.Event()
    await proxy.start()
    version = ""
    last_error = ""
    try:
        while not stop.is_set():
            try:
                config = await config_source.fetch(version)
                _xds_connected(proxy.runtime, True)
                if config is not None:
                    await proxy.apply(config)
                    version = config.version
                    proxy.runtime.stats.inc("", "", "cluster_manager.cds.update_attempt")
                last_error = ""
            except (TargetUnreachable, ConfigError, LabError) as exc:
                # Keep serving with the last good config; say so once per distinct failure.
                if str(exc) != last_error:
                    proxy.runtime.log(f"warning\tconfig\t{exc}")
                    last_error = str(exc)
                proxy.runtime.stats.inc("", "", "cluster_manager.cds.update_rejected")
                _xds_connected(proxy.runtime, not isinstance(exc, TargetUnreachable))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_interval)
    finally:
        await proxy.stop()


def _xds_connected(rt: Runtime, connected: bool) -> None:
    """The ``xds-grpc`` cluster's stats (kept by Istio by default): is istiod reachable?"""
    rt.stats.set_gauge("cluster", "xds-grpc", "upstream_cx_active", int(connected))
    rt.stats.cluster_inc(
        "xds-grpc", "upstream_rq_total" if connected else "upstream_cx_connect_fail"
    )
