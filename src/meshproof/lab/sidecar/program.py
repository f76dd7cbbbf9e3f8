"""The container program of ``istio/proxyv2``: ``istio-iptables`` (init) or ``proxy
sidecar|router``.

``istio-iptables`` has nothing to change in the lab: the kubelet points an
injected pod's app containers at the sidecar (``HTTP_PROXY``) and moves them off
the service ports the sidecar owns, which is what the REDIRECT rules achieve in
a real pod. ``proxy`` runs pilot-agent's loops around the lab proxy: the
workload certificate from istiod (rotated at half-life), config pushed by
istiod, applied as Envoy applies xDS (the last good config stays in force while
istiod is away).

A proxy whose pod directory holds ``memory-leak`` (``meshproof lab break
proxy-bloat``) leaks: it takes and keeps ``LEAK_BYTES`` of real memory, a
``LEAK_STEP`` at a time, so its resident memory, which the lab's
``server.memory_allocated`` reports, passes the runbook's high-memory bound.
Removing the file gives the memory back.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
from dataclasses import replace
from pathlib import Path

from meshproof.errors import MeshproofError
from meshproof.lab.images.context import ContainerContext
from meshproof.lab.istiod.ca import parse_ttl
from meshproof.lab.mesh.config import (
    Certificate,
    ProxyConfig,
    WanDelay,
    parse_kube_app_probers,
)
from meshproof.lab.mesh.proxy import Proxy
from meshproof.lab.sidecar.agent import IstiodClient, rotation_due, with_certificate

__all__ = ["run"]

RETRY_MIN, RETRY_MAX = 0.5, 5.0
NETWORK_FILE = "network.json"
"""In the lab directory: the WAN between the clusters (``meshproof lab break slow-wan``)."""
STALE_FLAG = "proxy-stale"
"""In the pod directory: this proxy's config stream is stuck (``lab break proxy-stale``)."""
WATCH_EVERY = 1.0
LEAK_FLAG = "memory-leak"
"""In the pod directory: this proxy leaks memory (``lab break proxy-bloat``)."""
LEAK_BYTES = 640 << 20
"""How much a leaking proxy holds at most: past half of istio-proxy's default 1 GiB limit."""
LEAK_STEP = 64 << 20


def _lab_root(ctx: ContainerContext) -> Path:
    # Pod directories are <lab>/pods/<cluster>/<namespace>/<pod>.
    return Path(ctx.pod_dir).parents[3]


def wan_delay(ctx: ContainerContext) -> WanDelay | None:
    """The WAN the lab's network currently has, when it differs from the default."""
    try:
        data = json.loads((_lab_root(ctx) / NETWORK_FILE).read_text())
        low, high = data["wan_one_way_ms"]
        return WanDelay(min_ms=float(low), max_ms=float(high))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _Agent:
    def __init__(self, ctx: ContainerContext, proxy: Proxy) -> None:
        self.ctx = ctx
        self.proxy = proxy
        self.client = IstiodClient(ctx)
        self.cert: Certificate | None = None
        self.config: ProxyConfig | None = None
        self._lock = asyncio.Lock()
        self._cert_ready = asyncio.Event()
        self._leaked: list[bytearray] = []

    def log(self, level: str, scope: str, message: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        print(f"{stamp}\t{level}\t{scope}\t{message}", file=self.ctx.log, flush=True)

    def stale(self) -> bool:
        return (Path(self.ctx.pod_dir) / STALE_FLAG).exists()

    def _effective(self, config: ProxyConfig, cert: Certificate) -> ProxyConfig:
        config = with_certificate(config, cert)
        if config.mode == "eastwest":
            delay = wan_delay(self.ctx)
            if delay is not None:
                config = replace(config, east_west=replace(config.east_west, wan_delay=delay))
        return config

    async def _apply(self) -> None:
        async with self._lock:
            if self.config is None or self.cert is None:
                return
            try:
                await self.proxy.apply(self._effective(self.config, self.cert))
            except MeshproofError as exc:
                self.log("warn", "ads", f"config {self.config.version} rejected: {exc}")

    def _max_ttl(self) -> datetime.timedelta | None:
        ttl = parse_ttl(self.ctx.env.get("SECRET_TTL", ""), datetime.timedelta(0))
        return ttl or None

    async def certificates(self, stop: asyncio.Event) -> None:
        delay = RETRY_MIN
        while not stop.is_set():
            try:
                self.cert = await self.client.certificate()
                self._cert_ready.set()
                await self._apply()
                due = rotation_due(self.cert.cert_chain_pem, max_ttl=self._max_ttl())
                self.log("info", "cache", f"workload certificate issued, rotation at "
                         f"{due.isoformat()}")
                wait = (due - datetime.datetime.now(datetime.UTC)).total_seconds()
                delay = RETRY_MIN
            except MeshproofError as exc:
                self.log("warn", "ca", f"certificate request failed: {exc}")
                wait, delay = delay, min(delay * 2, RETRY_MAX)
            try:
                await asyncio.wait_for(stop.wait(), max(wait, 0.1))
            except TimeoutError:
                pass

    async def configs(self, stop: asyncio.Event) -> None:
        delay = RETRY_MIN
        while not stop.is_set():
            try:
                applied = self.config.version if self.config else ""
                config = await self.client.config(applied)
                delay = RETRY_MIN
                if config is not None and self.stale():
                    # A stuck stream: nothing new is applied or acknowledged.
                    await asyncio.wait_for(stop.wait(), WATCH_EVERY * 15)
                    continue
                if config is not None:
                    self.config = config
                    await self._apply()
                continue
            except TimeoutError:
                continue
            except MeshproofError as exc:
                self.log("warn", "ads", f"istiod: {exc}; keeping the last config")
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, RETRY_MAX)


    async def network(self, stop: asyncio.Event) -> None:
        """Re-apply when the lab's WAN changes (east-west gateways only)."""
        seen = wan_delay(self.ctx)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), WATCH_EVERY)
            except TimeoutError:
                pass
            current = wan_delay(self.ctx)
            if current != seen and self.config is not None and self.config.mode == "eastwest":
                seen = current
                self.log("info", "network", f"WAN delay now {current or 'default'}")
                await self._apply()


    async def leak(self, stop: asyncio.Event) -> None:
        """Hold memory while the pod directory has ``LEAK_FLAG``; let it go when it is gone."""
        flag = Path(self.ctx.pod_dir) / LEAK_FLAG
        while not stop.is_set():
            if flag.exists():
                if len(self._leaked) * LEAK_STEP < LEAK_BYTES:
                    # Filled, not just reserved: untouched pages would not be resident.
                    self._leaked.append(bytearray(b"\x5a") * LEAK_STEP)
                    if len(self._leaked) * LEAK_STEP >= LEAK_BYTES:
                        self.log("warn", "envoy", f"heap holds {LEAK_BYTES >> 20} MiB leaked")
            elif self._leaked:
                self._leaked.clear()
                self.log("info", "envoy", "leaked memory released")
            try:
                await asyncio.wait_for(stop.wait(), WATCH_EVERY / 4)
            except TimeoutError:
                pass


async def _proxy(ctx: ContainerContext) -> int:
    pod_dir = Path(ctx.pod_dir)
    proxy = Proxy(pod_ip=ctx.pod_ip, pod_dir=pod_dir,
                  log=lambda line: print(line, file=ctx.log, flush=True),
                  app_probers=parse_kube_app_probers(ctx.env.get("ISTIO_KUBE_APP_PROBERS", "")))
    await proxy.start()
    agent = _Agent(ctx, proxy)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(agent.certificates(stop)),
             asyncio.create_task(agent.configs(stop)),
             asyncio.create_task(agent.network(stop)),
             asyncio.create_task(agent.leak(stop))]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await proxy.stop()
    return 0


def run(ctx: ContainerContext) -> int:
    argv = list(ctx.argv)
    if argv and argv[0] == "istio-iptables":
        print("istio-iptables: the lab redirects through HTTP_PROXY; nothing to install",
              file=ctx.log, flush=True)
        return 0
    return asyncio.run(_proxy(ctx))
