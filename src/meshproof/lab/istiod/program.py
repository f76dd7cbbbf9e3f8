"""The lab program for ``istio/pilot``: istiod in one process.

It reads what real istiod reads — the ``istio`` ConfigMap (mesh config), the
``cacerts`` plug-in CA mounted at ``/etc/cacerts``, ``CLUSTER_ID``, its own
cluster's API in-cluster and remote clusters through their remote secrets —
publishes ``istio-ca-root-cert`` into every namespace, keeps the injection
webhook's caBundle current, and serves config, certificates, metrics and
injection (``server.py``).
"""

from __future__ import annotations

import asyncio
import datetime
import signal
from collections.abc import Callable

from meshproof.lab.images.context import ContainerContext
from meshproof.lab.istiod.ca import WorkloadCA, parse_ttl
from meshproof.lab.istiod.discovery import Discovery
from meshproof.lab.istiod.inject import InjectionSettings
from meshproof.lab.istiod.kubeapi import ApiEndpoint, ApiWriter
from meshproof.lab.istiod.metrics import IstiodMetrics
from meshproof.lab.istiod.native import default_mode, istio_version, native_sidecars
from meshproof.lab.istiod.server import IstiodServer
from meshproof.lab.istiod.view import PilotFeatures

__all__ = ["run"]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
WEBHOOK = "istio-sidecar-injector"
PROXY_IMAGE = "docker.io/istio/proxyv2:1.31.0"
SYNC_TIMEOUT = 30.0
PUBLISH_EVERY = 5.0
FIRST_PUSH_POLL = 0.05


def _in_cluster(ctx: ContainerContext) -> ApiEndpoint:
    host = ctx.env.get("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    port = ctx.env.get("KUBERNETES_SERVICE_PORT", "443")
    token = ctx.path(f"{SA_DIR}/token").read_text().strip()
    ca_file = ctx.path(f"{SA_DIR}/ca.crt")
    ca = ca_file.read_text() if ca_file.exists() else ""
    scheme = "https" if ca else "http"
    return ApiEndpoint(cluster=ctx.env.get("CLUSTER_ID", ctx.cluster),
                       server=f"{scheme}://{host}:{port}", token=token, ca_pem=ca)


def _log(ctx: ContainerContext) -> Callable[[str], None]:
    def log(line: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        print(f"{stamp}\tinfo\t{line}", file=ctx.log, flush=True)

    return log


async def _publish(discovery: Discovery, writer: ApiWriter, ca: WorkloadCA,
                   log: Callable[[str], None]) -> None:
    """Root cert into every namespace, caBundle into the webhook, as istiod's controllers do.

    A new namespace gets ``istio-ca-root-cert`` as soon as istiod's cache sees it: istiod's
    NamespaceController queues a namespace on its informer's add event and reconciles the
    ConfigMap then (istio/istio pilot/pkg/serviceregistry/kube/controller/
    namespacecontroller.go), so an injected pod created right after its namespace mounts
    it at once. Every ``PUBLISH_EVERY`` seconds all namespaces and the webhook are written
    again, which puts back a ConfigMap someone deleted or changed.
    """
    loop = asyncio.get_running_loop()
    published: set[str] = set()
    last_full = -PUBLISH_EVERY
    generation = discovery.generation
    while True:
        full = loop.time() - last_full >= PUBLISH_EVERY
        try:
            for ns in discovery.namespaces():
                meta = ns.get("metadata") or {}
                name = str(meta.get("name", ""))
                if meta.get("deletionTimestamp") or (name in published and not full):
                    continue
                await writer.apply_configmap(
                    name, "istio-ca-root-cert", {"root-cert.pem": ca.root_bundle_pem},
                    {"istio.io/config": "true"})
                published.add(name)
            if full:
                await writer.patch_webhook_ca(WEBHOOK, ca.root_bundle_pem)
                last_full = loop.time()
                published &= {str((ns.get("metadata") or {}).get("name", ""))
                              for ns in discovery.namespaces()}
        except Exception as exc:  # retried on the next round; istiod keeps serving
            log(f"publishing root cert / webhook caBundle: {exc}")
        wait = max(0.0, last_full + PUBLISH_EVERY - loop.time())
        generation = await discovery.pushed_after(generation, wait)


async def _kubelet_versions(local: ApiEndpoint, log: Callable[[str], None]) -> list[str] | None:
    """Every node's kubelet version, as ``DetectNativeSidecar`` reads them; None when the
    nodes cannot be read."""
    try:
        async with local.session() as session, session.get("/api/v1/nodes") as reply:
            reply.raise_for_status()
            nodes = (await reply.json()).get("items") or []
    except Exception as exc:
        log(f"could not read nodes for native sidecar detection: {exc}")
        return None
    return [str(((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""))
            for n in nodes]


async def _native_sidecars(ctx: ContainerContext, local: ApiEndpoint,
                           log: Callable[[str], None]) -> bool:
    version = istio_version(str(ctx.container.get("image", "")))
    mode = ctx.env.get("ENABLE_NATIVE_SIDECARS") or default_mode(version)
    native = native_sidecars(mode, await _kubelet_versions(local, log)
                             if mode.strip().lower() == "auto" else [])
    log(f"ENABLE_NATIVE_SIDECARS={mode}: injecting {'native' if native else 'classic'} "
        "sidecars")
    return native


async def _main(ctx: ContainerContext) -> int:
    log = _log(ctx)
    cluster = ctx.env.get("CLUSTER_ID", ctx.cluster)
    local = _in_cluster(ctx)
    metrics = IstiodMetrics()
    discovery = Discovery(cluster, local, metrics, log=log,
                          features=PilotFeatures.from_env(
                              ctx.env, istio_version(str(ctx.container.get("image", "")))))
    discovery.start()
    if not await discovery.synced(SYNC_TIMEOUT):
        log("caches did not sync in time; serving anyway")
    # The first push also registers the remote clusters of the remote secrets: istiod does not
    # report itself managing none of them while it starts.
    for _ in range(int(SYNC_TIMEOUT / FIRST_PUSH_POLL)):
        if discovery.generation:
            break
        await asyncio.sleep(FIRST_PUSH_POLL)
    mesh = discovery.build_view().mesh
    ttl = parse_ttl(ctx.env.get("DEFAULT_WORKLOAD_CERT_TTL", ""), datetime.timedelta(hours=24))
    ca = WorkloadCA.from_cacerts(ctx.path("/etc/cacerts"), trust_domain=mesh.trust_domain,
                                 ttl=ttl)
    network = discovery.build_view().local_cluster.network
    injection = InjectionSettings(
        image=ctx.env.get("ISTIO_PROXY_IMAGE", PROXY_IMAGE), cluster_id=cluster,
        network=network, mesh_id=mesh.mesh_id, trust_domain=mesh.trust_domain,
        proxy_config=mesh.default_config,
        native_sidecars=await _native_sidecars(ctx, local, log))
    server = IstiodServer(address=ctx.pod_ip, discovery=discovery, ca=ca, metrics=metrics,
                          injection=injection)
    server.debug_namespaces = frozenset(
        n.strip() for n in ctx.env.get("DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES", "").split(",")
        if n.strip())
    await server.start()
    server.ready = True
    writer = ApiWriter(local)
    publisher = asyncio.get_running_loop().create_task(_publish(discovery, writer, ca, log))
    log(f"istiod {cluster} (network {network or '-'}) serving on {ctx.pod_ip}; "
        f"trust domain {mesh.trust_domain}; workload cert TTL {ttl}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    publisher.cancel()
    await writer.close()
    await server.stop()
    await discovery.stop()
    return 0


def run(ctx: ContainerContext) -> int:
    return asyncio.run(_main(ctx))

