"""The lab program for ``quay.io/jetstack/cert-manager-controller``.

Flags it reads (the real controller's, others are accepted and ignored):

- ``--kubeconfig=PATH``: the API server to use instead of the in-cluster one
  (service-account token and ``ca.crt`` under
  ``/var/run/secrets/kubernetes.io/serviceaccount``, ``$KUBERNETES_SERVICE_HOST``);
- ``--cluster-resource-namespace=NS``: where ClusterIssuers find secrets;
- ``--metrics-listen-address=HOST:PORT`` (default ``<pod IP>:9402``).

Lab-only: ``--lab-time-scale=F`` or ``$MESHPROOF_LAB_CERT_TIME_SCALE`` multiplies every
duration the controller applies (``0.001`` makes a 1h certificate live 3.6 s);
``$MESHPROOF_LAB_CERT_BREAK_DIR`` says where the ``cert-expiring`` flag file is.
Health is served on ``<pod IP>:9403`` (``/livez``, ``/healthz``), as the probe expects.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from meshproof.errors import ConfigError
from meshproof.lab.certmanager.breaks import pod_break_dir
from meshproof.lab.certmanager.controller import Controller, Settings
from meshproof.lab.certmanager.kubeapi import (
    SA_DIR,
    ApiClient,
    endpoint_from_kubeconfig,
    in_cluster_endpoint,
)
from meshproof.lab.certmanager.metrics import ControllerMetrics
from meshproof.lab.images.context import ContainerContext

__all__ = ["TIME_SCALE_ENV", "run"]

TIME_SCALE_ENV = "MESHPROOF_LAB_CERT_TIME_SCALE"
METRICS_PORT = 9402
HEALTH_PORT = 9403


def _parse(argv: list[str], env: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="cert-manager-controller", allow_abbrev=False)
    parser.add_argument("--kubeconfig", default="")
    parser.add_argument("--cluster-resource-namespace", default="kube-system")
    parser.add_argument("--metrics-listen-address", default="")
    parser.add_argument("--lab-time-scale", type=float, default=None)
    args, _ = parser.parse_known_args(argv)
    scale = args.lab_time_scale
    if scale is None:
        try:
            scale = float(env.get(TIME_SCALE_ENV) or os.environ.get(TIME_SCALE_ENV) or 1.0)
        except ValueError as exc:
            raise ConfigError(f"{TIME_SCALE_ENV} must be a number: {exc}") from exc
    if scale <= 0:
        raise ConfigError(f"the lab time scale must be > 0, got {scale}")
    args.lab_time_scale = scale
    return args


def _logger(ctx: ContainerContext) -> Callable[[str], None]:
    pid = os.getpid()

    def log(line: str) -> None:
        # klog's header: severity, MMDD, time, pid, source.
        now = datetime.datetime.now(datetime.UTC)
        print(f"I{now:%m%d %H:%M:%S.%f} {pid:>7} controller.go] {line}", file=ctx.log,
              flush=True)

    return log


async def _serve(metrics: ControllerMetrics, metrics_host: str, metrics_port: int,
                 health_host: str) -> list[web.AppRunner]:
    async def exposition(_: web.Request) -> web.Response:
        return web.Response(text=metrics.exposition(),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    metrics_app = web.Application()
    metrics_app.router.add_get("/metrics", exposition)
    health_app = web.Application()
    for path in ("/livez", "/healthz", "/readyz"):
        health_app.router.add_get(path, ok)
    runners = []
    for app, host, port in ((metrics_app, metrics_host, metrics_port),
                            (health_app, health_host, HEALTH_PORT)):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
    return runners


async def _main(ctx: ContainerContext) -> int:
    log = _logger(ctx)
    try:
        args = _parse(ctx.argv, ctx.env)
        if args.kubeconfig:
            endpoint = endpoint_from_kubeconfig(Path(args.kubeconfig))
        else:
            endpoint = in_cluster_endpoint(ctx.env, ctx.path(SA_DIR))
    except ConfigError as exc:
        log(f"cannot start: {exc}")
        return 1
    host, _, port = (args.metrics_listen_address or f"{ctx.pod_ip}:{METRICS_PORT}"
                     ).rpartition(":")
    if host in ("", "0.0.0.0"):
        host = ctx.pod_ip
    settings = Settings(cluster_resource_namespace=args.cluster_resource_namespace,
                        time_scale=args.lab_time_scale,
                        break_dir=pod_break_dir(Path(ctx.pod_dir), ctx.cluster, ctx.env),
                        instance=ctx.pod)
    client = ApiClient(endpoint, user_agent=f"cert-manager-controller/lab ({ctx.cluster})")
    controller = Controller(client, settings, log=log)
    runners = await _serve(controller.metrics, host, int(port), ctx.pod_ip)
    log(f"cert-manager controller for {ctx.cluster}: API {endpoint.server}, cluster resource "
        f"namespace {settings.cluster_resource_namespace}, time scale "
        f"{settings.time_scale:g}, metrics on {host}:{port}, break flag in "
        f"{settings.break_dir}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await controller.run(stop)
    finally:
        for runner in runners:
            await runner.cleanup()
        await client.close()
    return 0


def run(ctx: ContainerContext) -> int:
    return asyncio.run(_main(ctx))
