"""The lab program for ``hashicorp/consul-k8s-control-plane sync-catalog`` (Kubernetes → Consul).

It watches its cluster's Services, EndpointSlices and Nodes in-cluster
(:mod:`.incluster`), computes what consul-k8s would register
(:mod:`.registrations`) and reconciles Consul's node ``k8s-sync`` with it: what is
missing or different is registered, instances tagged ``k8s`` that Kubernetes no
longer has are deregistered. A change is written within a fraction of a second;
a full pass also runs every ``-consul-write-interval`` (lab default 5s; consul-k8s
waits 30s). Consul is found as consul-k8s finds it: ``CONSUL_ADDRESSES`` (the
``consul-server.<ns>.svc`` name, resolved through the API, or an IP) and
``CONSUL_HTTP_PORT``.

It serves ``/health/ready`` on ``<pod IP>:8080`` (the chart's probes) and the lab's
``consul-stale`` control, ``/lab/sync-paused`` (GET; PUT ``true``/``false``): while
paused, nothing is written to Consul, so entries Kubernetes has dropped stay in the
catalog, which is how a stuck sync really fails. The pause is kept in
``<pod dir>/lab-sync-paused`` so that a container restart does not heal it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from meshproof.lab.consul.args import parse_flags, program_args
from meshproof.lab.consul.incluster import in_cluster, resolve_host
from meshproof.lab.consul.registrations import SyncOptions, desired_registrations
from meshproof.lab.images.context import ContainerContext
from meshproof.lab.istiod.kubeapi import Informer

__all__ = ["ADMIN_PORT", "PAUSE_FILE", "options_from", "run"]

ADMIN_PORT = 8080
PAUSE_FILE = "lab-sync-paused"
DEBOUNCE = 0.1
DEFAULT_WRITE_INTERVAL = 5.0

Obj = dict[str, Any]


def _duration(text: str) -> float:
    text = text.strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * scale
    return float(text)


def options_from(flags: dict[str, list[str]]) -> tuple[SyncOptions, float]:
    """Sync options and write interval from ``sync-catalog`` flags (consul-k8s defaults)."""

    def flag(name: str, default: str) -> str:
        return flags.get(name, [default])[-1].strip('"')

    def boolean(name: str, default: bool) -> bool:
        return flag(name, str(default).lower()).lower() in ("true", "1", "t")

    allow = {v.strip('"') for v in flags.get("allow-k8s-namespace", [])} or {"*"}
    opts = SyncOptions(
        default_sync=boolean("k8s-default-sync", True),
        allow_namespaces=allow,
        deny_namespaces={v.strip('"') for v in flags.get("deny-k8s-namespace", [])},
        sync_clusterip=boolean("sync-clusterip-services", True),
        add_namespace_suffix=boolean("add-k8s-namespace-suffix", False),
        service_prefix=flag("consul-service-prefix", ""),
        k8s_tag=flag("consul-k8s-tag", "k8s"),
        node_name=flag("consul-node-name", "k8s-sync"),
        node_port_sync=flag("node-port-sync-type", "ExternalFirst"),
    )
    interval = _duration(flag("consul-write-interval", str(DEFAULT_WRITE_INTERVAL)))
    return opts, interval


def _same(current: Obj | None, reg: Obj, check: Obj | None) -> bool:
    """Does Consul already hold ``reg`` exactly (service and its readiness check)?"""
    if current is None:
        return False
    svc = reg["Service"]
    if (current["Service"], current["Address"], current["Port"], current.get("Ports") or [],
            current["Tags"], current["Meta"]) != (svc["Service"], svc["Address"], svc["Port"],
                                                  svc["Ports"], svc["Tags"], svc["Meta"]):
        return False
    want = reg.get("Check")
    if want is None:
        return True
    return check is not None and check.get("Status") == want["Status"]


def _ports_text(ports: list[Obj]) -> str:
    return ",".join(f"{p['Name']}:{p['Port']}{'*' if p['Default'] else ''}" for p in ports)


class CatalogSync:
    """The reconciler: Kubernetes caches in, Consul catalog writes out."""

    def __init__(self, ctx: ContainerContext, opts: SyncOptions, interval: float,
                 log: Callable[[str], None]) -> None:
        self.ctx = ctx
        self.opts = opts
        self.interval = interval
        self.log = log
        self.api = in_cluster(ctx)
        self.kick = asyncio.Event()
        self.ready = False
        self.pause_file = Path(ctx.pod_dir) / PAUSE_FILE
        self.consul_host = ctx.env.get("CONSUL_ADDRESSES", "127.0.0.1")
        self.consul_port = int(ctx.env.get("CONSUL_HTTP_PORT", "8500"))
        self._consul_ips: list[str] = []
        self.informers: dict[str, Informer] = {}

    @property
    def paused(self) -> bool:
        return self.pause_file.exists()

    def set_paused(self, paused: bool) -> None:
        if paused:
            self.pause_file.write_text("paused\n")
            self.log("[WARN]  lab: catalog sync paused (consul-stale)")
        else:
            with contextlib.suppress(FileNotFoundError):
                self.pause_file.unlink()
            self.log("[INFO]  lab: catalog sync resumed")
            self.kick.set()

    def start_informers(self) -> None:
        if self.api is None:
            raise RuntimeError(f"no service-account token in pod {self.ctx.namespace}/"
                               f"{self.ctx.pod} (cluster {self.ctx.cluster})")
        for key, path in (("services", "/api/v1/services"),
                          ("slices", "/apis/discovery.k8s.io/v1/endpointslices"),
                          ("nodes", "/api/v1/nodes")):
            self.informers[key] = Informer(self.api, path, self.kick.set, log=self.log)
            self.informers[key].start()

    async def _consul(self, session: aiohttp.ClientSession, method: str, path: str,
                      body: Any = None) -> Any:
        """One request to some Consul server (any server forwards to the leader)."""
        if not self._consul_ips:
            self._consul_ips = await resolve_host(self.api, self.consul_host)
        last: Exception | None = None
        for ip in list(self._consul_ips):
            url = f"http://{ip}:{self.consul_port}{path}"
            try:
                async with session.request(method, url, json=body) as reply:
                    text = await reply.text()
                    if reply.status != 200:
                        raise RuntimeError(f"{method} {path}: {reply.status} {text.strip()}")
                    return json.loads(text) if text.strip() else None
            except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError) as exc:
                last = exc
        self._consul_ips = []
        raise RuntimeError(f"Consul at {self.consul_host}:{self.consul_port} "
                           f"({self.ctx.cluster}): {last or 'no address'}")

    async def reconcile(self, session: aiohttp.ClientSession) -> None:
        services = self.informers["services"].items()
        slices = self.informers["slices"].items()
        nodes = {o["metadata"]["name"]: o for o in self.informers["nodes"].items()}
        desired = {r["Service"]["ID"]: r
                   for r in desired_registrations(services, slices, self.opts, nodes)}
        node = await self._consul(session, "GET", f"/v1/catalog/node/{self.opts.node_name}")
        current: dict[str, Obj] = {sid: s for sid, s in ((node or {}).get("Services") or {}).items()
                                   if self.opts.k8s_tag in (s.get("Tags") or [])}
        checks: dict[str, Obj] = {}
        if current:
            for c in await self._consul(session, "GET",
                                        f"/v1/health/node/{self.opts.node_name}") or []:
                checks[c.get("ServiceID", "")] = c
        for sid in sorted(set(current) - set(desired)):
            await self._consul(session, "PUT", "/v1/catalog/deregister",
                               {"Node": self.opts.node_name, "ServiceID": sid})
            self.log(f"[INFO]  to-consul/source: deregistering service: "
                     f"node-name={self.opts.node_name} service-id={sid}")
        for sid, reg in sorted(desired.items()):
            if not _same(current.get(sid), reg, checks.get(sid)):
                await self._consul(session, "PUT", "/v1/catalog/register", reg)
                self.log(f"[INFO]  to-consul/source: registered service instance: "
                         f"service-name={reg['Service']['Service']} service-id={sid} "
                         f"address={reg['Service']['Address']} "
                         f"ports={_ports_text(reg['Service']['Ports'])}")

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.kick.wait(), self.interval)
                await asyncio.sleep(DEBOUNCE)
                self.kick.clear()
                if self.paused or not all(i.synced.is_set() for i in self.informers.values()):
                    continue
                try:
                    await self.reconcile(session)
                    self.ready = True
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # retried on the next kick or interval
                    self.log(f"[ERROR] to-consul/source: sync failed, will retry: {exc}")
                    await asyncio.sleep(0.5)
                    self.kick.set()

    def admin_app(self) -> web.Application:
        async def ready(request: web.Request) -> web.Response:
            return web.Response(status=200 if self.ready else 500,
                                text="ok" if self.ready else "not synced yet")

        async def paused(request: web.Request) -> web.Response:
            if request.method == "PUT":
                text = (await request.text()).strip().lower()
                if text not in ("true", "false"):
                    return web.Response(status=400, text="body must be true or false")
                self.set_paused(text == "true")
            return web.json_response({"paused": self.paused})

        app = web.Application()
        app.add_routes([web.get("/health/ready", ready),
                        web.route("*", "/lab/sync-paused", paused)])
        return app


def _log(ctx: ContainerContext) -> Callable[[str], None]:
    def log(line: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        print(f"{stamp} {line}", file=ctx.log, flush=True)

    return log


async def _main(ctx: ContainerContext) -> int:
    log = _log(ctx)
    flags = parse_flags(program_args(ctx.argv, ctx.env, ("consul-k8s-control-plane",
                                                         "sync-catalog")))
    if flags.get("to-consul", ["true"])[-1] == "false":
        log("[INFO]  to-consul disabled; nothing to sync")
    opts, interval = options_from(flags)
    sync = CatalogSync(ctx, opts, interval, log)
    runner = web.AppRunner(sync.admin_app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, ctx.pod_ip, ADMIN_PORT).start()
    sync.start_informers()
    task = asyncio.get_running_loop().create_task(sync.run())
    log(f"[INFO]  starting runner for endpoints (node {opts.node_name}, tag {opts.k8s_tag}, "
        f"namespace suffix {opts.add_namespace_suffix}, paused {sync.paused})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for informer in sync.informers.values():
        await informer.stop()
    await runner.cleanup()
    return 0


def run(ctx: ContainerContext) -> int:
    """Entry point (``meshproof.lab.consul.sync:run``)."""
    return asyncio.run(_main(ctx))
