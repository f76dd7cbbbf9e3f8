"""The lab program for ``hashicorp/consul``: ``consul agent -server`` in one process.

It reads the flags the chart's StatefulSet passes (``-advertise``, ``-bind``,
``-client``, ``-datacenter``, ``-data-dir``, ``-bootstrap-expect``, ``-retry-join``,
``-serf-lan-port``), serves the HTTP API on ``<pod IP>:8500`` and the server
port on ``<pod IP>:8300``, where the servers elect a leader and replicate
(:mod:`.election`). ``-retry-join`` names (``consul-server-1.consul-server.consul.svc:8301``)
are resolved through the Kubernetes API each round, so a restarted peer with a
new pod IP is found again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from meshproof.lab.consul.agent import AgentConfig, ServerAgent
from meshproof.lab.consul.args import parse_flags, program_args
from meshproof.lab.consul.election import ServerCluster
from meshproof.lab.consul.httpapi import make_app
from meshproof.lab.consul.incluster import in_cluster, resolve_host
from meshproof.lab.images.context import ContainerContext

__all__ = ["config_from", "run"]

RESOLVE_EVERY = 2.0


def config_from(ctx: ContainerContext) -> AgentConfig:
    """The agent's config from the container's command (or the image default)."""
    words = program_args(ctx.argv, ctx.env, ("consul", "agent"))
    flags = parse_flags(words)

    def one(name: str, default: str) -> str:
        return flags.get(name, [default])[-1]

    advertise = one("advertise", ctx.pod_ip) or ctx.pod_ip
    bind = one("bind", ctx.pod_ip)
    data_dir = one("data-dir", "")
    return AgentConfig(
        node_name=one("node", ctx.env.get("HOSTNAME") or ctx.pod),
        datacenter=one("datacenter", "dc1"),
        advertise=advertise,
        # The lab binds the pod's own address: 0.0.0.0 would clash with other pods.
        bind=ctx.pod_ip if bind in ("0.0.0.0", "") else bind,
        serf_lan_port=int(one("serf-lan-port", "8301")),
        bootstrap_expect=int(one("bootstrap-expect", "1")),
        retry_join=flags.get("retry-join", []),
        data_dir=_host_path(ctx, data_dir) if data_dir else None,
    )


def _host_path(ctx: ContainerContext, path: str) -> Path:
    """Where ``path`` of the command line is: ``ctx.argv`` already has mounted container paths
    rewritten to their volumes, so a path inside a volume's directory is used as it is
    (mapped again, a lab dir under ``/tmp`` would land in the container's own ``/tmp``
    and the data dir would not survive the pod)."""
    for host in ctx.mounts.values():
        root = host.rstrip("/")
        if root and (path == root or path.startswith(root + "/")):
            return Path(path)
    return ctx.path(path)


def _log(ctx: ContainerContext) -> Callable[[str], None]:
    def log(line: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
        print(f"{stamp} {line}", file=ctx.log, flush=True)

    return log


async def _main(ctx: ContainerContext) -> int:
    log = _log(ctx)
    config = config_from(ctx)
    api = in_cluster(ctx)
    state, state_term, restored = ServerAgent.load_state(config)
    resolved: dict[str, tuple[float, list[str]]] = {}

    async def peers() -> list[str]:
        loop = asyncio.get_running_loop()
        out: list[str] = []
        for entry in config.retry_join:
            host = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
            cached = resolved.get(host)
            if cached is None or loop.time() - cached[0] > RESOLVE_EVERY:
                cached = (loop.time(), await resolve_host(api, host))
                resolved[host] = cached
            out += [a for a in cached[1] if a not in out]
        return out

    agent: ServerAgent | None = None

    def on_change() -> None:
        if agent is not None:
            agent.mark_dirty()

    cluster = ServerCluster(name=config.node_name, address=config.advertise,
                            server_port=config.server_port, state=state, peers=peers,
                            bootstrap_expect=config.bootstrap_expect, restored=restored,
                            on_change=on_change, log=log)
    cluster.state_term = cluster.term = state_term
    agent = ServerAgent(config, cluster)
    log(f"==> Starting Consul agent...\n           Version: '{config.version}'\n"
        f"         Node name: '{config.node_name}'\n        Datacenter: '{config.datacenter}'\n"
        f"            Server: true (Bootstrap: {config.bootstrap_expect == 1})\n"
        f"       Client Addr: [{config.bind}] (HTTP: {config.http_port})\n"
        f"      Cluster Addr: {config.advertise} (LAN: {config.serf_lan_port})")
    if restored:
        log(f"[INFO]  agent.server: restored catalog from data dir (index {state.index})")

    http_runner = web.AppRunner(make_app(agent), access_log=None, shutdown_timeout=0.5)
    server_app = web.Application()
    server_app.add_routes(cluster.routes())
    server_runner = web.AppRunner(server_app, access_log=None, shutdown_timeout=0.5)
    await http_runner.setup()
    await server_runner.setup()
    await web.TCPSite(http_runner, config.bind, config.http_port).start()
    await web.TCPSite(server_runner, config.bind, config.server_port).start()
    cluster.start()
    agent.start()
    log("==> Consul agent running!")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log("[INFO]  agent: Caught signal: signal=terminated")
    await cluster.stop()
    await agent.stop()
    await http_runner.cleanup()
    await server_runner.cleanup()
    return 0


def run(ctx: ContainerContext) -> int:
    """Entry point (``meshproof.lab.consul.server:run``)."""
    return asyncio.run(_main(ctx))
