"""istiod's listeners, on the pod's address as real istiod's ports.

- 15010  the lab's config stream: ``GET /lab/v1/config?namespace=&pod=&applied=&wait=``
         (a long poll: the proxy's ``ProxyConfig`` JSON once it differs from ``applied``,
         else 304); what xDS is to Envoy.
- 15012  TLS: ``POST /lab/v1/certificate`` with ``Authorization: Bearer <istio-token>``
         → the workload certificate, key and trust bundle (the CA).
- 15014  ``/metrics`` (Prometheus, open) and ``/debug/syncz`` (per-proxy sync, JSON), which
         answers only callers on the pod's own address or with a valid token
         (:meth:`IstiodServer._debug`).
- 15017  TLS: ``POST /inject``, the sidecar injection webhook.
- 8080   ``/ready``.
"""

from __future__ import annotations

import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from meshproof import pki
from meshproof.lab.istiod.ca import TokenRejected, WorkloadCA, token_identity
from meshproof.lab.istiod.discovery import Discovery
from meshproof.lab.istiod.inject import InjectionSettings, review_response
from meshproof.lab.istiod.metrics import IstiodMetrics

__all__ = ["ISTIO_VERSION", "IstiodServer"]

ISTIO_VERSION = "1.31.0"
MAX_WAIT = 30.0
SYSTEM_NAMESPACE = "istio-system"
NAMESPACE_DEBUGGERS = frozenset({"config_dump", "ndsz", "edsz"})
"""Debug paths a caller from another namespace may read (istio/istio
``pilot/pkg/xds/debuggen.go`` ``activeNamespaceDebuggers``)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _tls_context(cert: pki.CertKey) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as tmp:
        chain, key = Path(tmp, "chain.pem"), Path(tmp, "key.pem")
        chain.write_bytes(cert.chain_pem())
        key.write_bytes(cert.key_pem())
        context.load_cert_chain(chain, key)
    return context


class IstiodServer:
    def __init__(self, *, address: str, discovery: Discovery, ca: WorkloadCA,
                 metrics: IstiodMetrics, injection: InjectionSettings) -> None:
        self.address = address
        self.discovery = discovery
        self.ca = ca
        self.metrics = metrics
        self.injection = injection
        self.ready = False
        self.debug_namespaces: frozenset[str] = frozenset()
        """``DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES``: namespaces allowed every debug path."""
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        serving = _tls_context(self.ca.serving_cert(
            ["istiod.istio-system.svc", "istiod.istio-system.svc.cluster.local", "istiod"]))
        await self._serve(15010, [web.get("/lab/v1/config", self.config)])
        await self._serve(15012, [web.post("/lab/v1/certificate", self.certificate)], serving)
        await self._serve(15014, [web.get("/metrics", self.prometheus),
                                  web.get("/debug/syncz", self._debug(self.syncz))])
        await self._serve(15017, [web.post("/inject", self.inject)], serving)
        await self._serve(8080, [web.get("/ready", self.readiness)])

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    async def _serve(self, port: int, routes: list[web.RouteDef],
                     context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.add_routes(routes)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.address, port, ssl_context=context).start()
        self._runners.append(runner)

    def _debug(self, handler: Handler) -> Handler:
        """istiod's ``allowAuthenticatedOrLocalhost`` around a debug handler (istio/istio
        ``pilot/pkg/xds/debug.go``, since PR #32903; ``ENABLE_DEBUG_ENDPOINT_AUTH`` on by
        default, ``pilot/pkg/features/pilot.go``).

        - A caller on localhost gets through. Go's ``IsLoopback`` would count all of
          127.0.0.0/8, but in the lab every pod and the API server share the host's
          loopback: a lab pod's own localhost is its address, so only a peer on this pod's
          address counts (``pilot-discovery request`` connects from it). Anything else -
          the API server's ``pods/proxy``, Prometheus, other pods - is remote.
        - Otherwise the caller must present ``Authorization: Bearer <service-account JWT>``
          with audience ``istio-ca``, as for xDS (``KubeJWTAuthenticator``; the lab reads
          the claims as its CA does). None, or a rejected one: 401 with an empty body
          (upstream only calls ``WriteHeader``).
        - An identity outside the system namespace (or ``DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES``)
          may read only ``config_dump``, ``ndsz`` and ``edsz``; else 403, empty body.
        """
        async def guarded(request: web.Request) -> web.StreamResponse:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            if peer and peer[0] == self.address:
                return await handler(request)
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return web.Response(status=401)
            try:
                namespace, _ = token_identity(header.removeprefix("Bearer ").strip())
            except TokenRejected:
                return web.Response(status=401)
            if namespace not in {SYSTEM_NAMESPACE, *self.debug_namespaces} and \
                    request.path.removeprefix("/debug/") not in NAMESPACE_DEBUGGERS:
                return web.Response(status=403)
            return await handler(request)

        return guarded

    async def readiness(self, _: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503,
                            text="ready" if self.ready else "not ready")

    async def config(self, request: web.Request) -> web.Response:
        q = request.query
        namespace, pod = q.get("namespace", ""), q.get("pod", "")
        if not namespace or not pod:
            return web.json_response({"error": "namespace and pod are required"}, status=400)
        wait = min(float(q.get("wait", "20")), MAX_WAIT)
        applied = q.get("applied", q.get("version", ""))
        if applied and (namespace, pod) not in self.discovery.proxies:
            # A proxy reconnecting to a restarted istiod: a new xDS stream starts with a full
            # push, which a proxy already holding that config acknowledges at once.
            current = self.discovery.config_for(namespace, pod)
            if current is not None and current.version == applied:
                await self.discovery.poll(namespace, pod, "", 0)
        config = await self.discovery.poll(namespace, pod, applied, wait)
        if config is None:
            return web.Response(status=304)
        return web.Response(text=config.to_json(), content_type="application/json")

    async def certificate(self, request: web.Request) -> web.Response:
        self.metrics.csr_count += 1
        header = request.headers.get("Authorization", "")
        try:
            namespace, account = token_identity(header.removeprefix("Bearer ").strip())
        except TokenRejected as exc:
            self.metrics.sign_errors += 1
            return web.json_response({"error": f"authentication failed: {exc}"}, status=401)
        try:
            issued = self.ca.issue(namespace, account)
        except Exception as exc:  # reported to the caller and counted, as istiod does
            self.metrics.sign_errors += 1
            return web.json_response({"error": f"signing failed: {exc}"}, status=500)
        self.metrics.issued += 1
        return web.json_response({
            "cert_chain_pem": issued.chain_pem().decode(),
            "key_pem": issued.key_pem().decode(),
            "root_bundle_pem": self.ca.root_bundle_pem,
        })

    async def prometheus(self, _: web.Request) -> web.Response:
        self.metrics.connected = len(self.discovery.connected())
        self.metrics.root_expiry = self.ca.root_expiry
        return web.Response(text=self.metrics.exposition(),
                            content_type="text/plain", charset="utf-8")

    async def syncz(self, _: web.Request) -> web.Response:
        now = time.monotonic()
        rows = []
        for p in self.discovery.connected():
            row = {"cluster_id": p.cluster, "proxy": f"{p.pod}.{p.namespace}",
                   "proxy_type": p.proxy_type, "istio_version": ISTIO_VERSION,
                   "last_seen_seconds": round(now - p.last_seen, 3)}
            for kind in ("cluster", "listener", "route", "endpoint"):
                row[f"{kind}_sent"] = p.sent
                row[f"{kind}_acked"] = p.acked
            rows.append(row)
        return web.json_response(rows)

    async def inject(self, request: web.Request) -> web.Response:
        return web.json_response(review_response(await request.json(), self.injection))
