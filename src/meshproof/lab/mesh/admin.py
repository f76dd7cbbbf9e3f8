"""The proxy's HTTP side doors: Envoy admin (15000), health (15021) and metrics (15020, 15090).

Admin serves ``/stats`` (``?filter=``, ``?format=json|prometheus``),
``/stats/prometheus``, ``/clusters``, ``/config_dump``, ``/server_info``,
``/ready``, ``/listeners`` and ``/certs`` in Envoy's shapes. As in Istio it is
bound to 127.0.0.1 only; the lab records its port in the pod directory and
the ``pilot-agent request GET <path>`` script reaches it from inside the pod.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from meshproof.lab.mesh.http1 import Headers, HttpParseError, Request, Response, read_response
from meshproof.lab.mesh.runtime import ENVOY_VERSION, Runtime
from meshproof.lab.mesh.upstream import Host, UpstreamCluster

__all__ = [
    "admin_handler",
    "app_health",
    "config_dump",
    "health_handler",
    "metrics_handler",
    "render_clusters",
]


def _text(status: int, body: str, ctype: str = "text/plain; charset=UTF-8") -> Response:
    return Response(status=status, headers=Headers([("content-type", ctype)]), body=body.encode())


def _json(doc: Any, status: int = 200) -> Response:
    return _text(status, json.dumps(doc, indent=2) + "\n", "application/json")


def prometheus_text(rt: Runtime) -> str:
    """Istio's metrics followed by the Envoy stats, as Envoy's ``/stats/prometheus`` serves them."""
    rt.refresh_server_gauges()
    return rt.metrics.render_prometheus() + rt.stats.render_prometheus()


def render_clusters(rt: Runtime) -> str:
    """``/clusters`` text: circuit-breaker lines and one block of ``::`` lines per host."""
    out: list[str] = []
    for name, cluster in sorted(rt.clusters.items()):
        out += _cluster_lines(name, cluster)
    return "\n".join(out) + ("\n" if out else "")


def _health_flags(host: Host) -> str:
    """Envoy's ``HostUtility::healthFlagsToString`` (source/common/upstream/host_utility.cc):
    ``healthy``, or each set flag in enum order, ``/failed_outlier_check`` before
    ``/failed_eds_health``."""
    flags = ("/failed_outlier_check" if host.health.ejected else "") + (
        "/failed_eds_health" if host.eds_unhealthy else "")
    return flags or "healthy"


def _cluster_lines(name: str, cluster: UpstreamCluster) -> list[str]:
    pool = cluster.config.connection_pool
    lines = [f"{name}::observability_name::{name}"]
    for prio in ("default_priority", "high_priority"):
        lines += [
            f"{name}::{prio}::max_connections::{pool.max_connections}",
            f"{name}::{prio}::max_pending_requests::{pool.http1_max_pending_requests}",
            f"{name}::{prio}::max_requests::{pool.http2_max_requests}",
            f"{name}::{prio}::max_retries::{pool.max_retries}",
        ]
    lines.append(f"{name}::added_via_api::true")
    cluster.detector.refresh([h.health for h in cluster.hosts])
    for h in cluster.hosts:
        ep = h.endpoint
        flags = _health_flags(h)
        prefix = f"{name}::{h.key}"
        for stat, value in (
            ("cx_active", h.cx_active),
            ("cx_connect_fail", h.cx_connect_fail),
            ("cx_total", h.cx_total),
            ("rq_active", h.rq_active),
            ("rq_error", h.rq_error),
            ("rq_success", h.rq_success),
            ("rq_timeout", h.rq_timeout),
            ("rq_total", h.rq_total),
            ("hostname", ""),
            ("health_flags", flags),
            ("weight", ep.weight),
            ("region", ep.region),
            ("zone", ep.zone),
            ("sub_zone", ""),
            ("canary", "false"),
            ("priority", cluster.priority(ep) if cluster.config.outlier_detection else 0),
            ("success_rate", -1),
            ("local_origin_success_rate", -1),
        ):
            lines.append(f"{prefix}::{stat}::{value}")
    return lines


def _node(rt: Runtime) -> dict[str, Any]:
    assert rt.config is not None
    ident = rt.identity
    kind = "sidecar" if rt.config.mode == "sidecar" else "router"
    pod = ident.pod_name or ident.workload
    return {
        "id": f"{kind}~{ident.pod_ip}~{pod}.{ident.namespace}~{ident.namespace}.svc.cluster.local",
        "cluster": f"{ident.canonical_name}.{ident.namespace}",
        "locality": {k: v for k, v in (("region", ident.region), ("zone", ident.zone)) if v},
        "metadata": {
            "CLUSTER_ID": ident.cluster,
            "NETWORK": ident.network,
            "NAMESPACE": ident.namespace,
            "NAME": pod,
            "WORKLOAD_NAME": ident.workload,
            "SERVICE_ACCOUNT": ident.service_account,
            "INSTANCE_IPS": ident.pod_ip,
            "LABELS": {"app": ident.app, "version": ident.version},
        },
    }


def _endpoints_dump(rt: Runtime) -> dict[str, Any]:
    """``EndpointsConfigDump``: what ``?include_eds`` adds (the endpoints each cluster holds)."""
    configs = []
    for name, cluster in sorted(rt.clusters.items()):
        by_locality: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for h in cluster.hosts:
            ep = h.endpoint
            by_locality.setdefault((ep.region, ep.zone), []).append(
                {
                    "endpoint": {
                        "address": {
                            "socket_address": {"address": ep.address, "port_value": ep.port}
                        }
                    },
                    "health_status": "HEALTHY" if h.healthy else "UNHEALTHY",
                    "load_balancing_weight": ep.weight,
                }
            )
        configs.append(
            {
                "endpoint_config": {
                    "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
                    "cluster_name": name,
                    "endpoints": [
                        {
                            "locality": {k: v for k, v in (("region", r), ("zone", z)) if v},
                            "lb_endpoints": eps,
                        }
                        for (r, z), eps in by_locality.items()
                    ],
                }
            }
        )
    return {
        "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
        "dynamic_endpoint_configs": configs,
    }


def config_dump(rt: Runtime, *, include_eds: bool = False) -> dict[str, Any]:
    """A minimal ``/config_dump`` with the real section types (endpoints with ``include_eds``)."""
    if rt.config is None:
        return {"configs": []}
    cfg = rt.config
    clusters = []
    for name, cl in sorted(rt.clusters.items()):
        oc = cl.config
        pool = oc.connection_pool
        doc: dict[str, Any] = {
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": name,
            "type": "EDS",
            "connect_timeout": f"{pool.connect_timeout:g}s",
            "circuit_breakers": {
                "thresholds": [
                    {
                        "max_connections": pool.max_connections,
                        "max_pending_requests": pool.http1_max_pending_requests,
                        "max_requests": pool.http2_max_requests,
                        "max_retries": pool.max_retries,
                    }
                ]
            },
        }
        if oc.outlier_detection is not None:
            od = oc.outlier_detection
            doc["outlier_detection"] = {
                "consecutive_5xx": od.consecutive_5xx_errors,
                "interval": f"{od.interval:g}s",
                "base_ejection_time": f"{od.base_ejection_time:g}s",
                "max_ejection_percent": od.max_ejection_percent,
            }
        if oc.tls_mode == "ISTIO_MUTUAL":
            doc["transport_socket"] = {"name": "envoy.transport_sockets.tls"}
        clusters.append({"version_info": cfg.version, "cluster": doc})
    listeners = [
        {"name": f"{cfg.identity.pod_ip}_{p.port}", "active_state": {"version_info": cfg.version}}
        for p in cfg.inbound.ports
    ]
    routes = [
        {
            "version_info": cfg.version,
            "route_config": {
                "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                "name": str(vh.port),
                "virtual_hosts": [{"name": f"{vh.domains[0]}:{vh.port}", "domains": vh.domains}],
            },
        }
        for vh in cfg.virtual_hosts
    ]
    secrets = []
    if rt.cert is not None:
        secrets = [
            {
                "name": "default",
                "version_info": cfg.version,
                "secret": {
                    "name": "default",
                    "tls_certificate": {
                        "certificate_chain": {
                            "inline_bytes": base64.b64encode(
                                rt.cert.cert_chain_pem.encode()
                            ).decode()
                        }
                    },
                },
            },
            {
                "name": "ROOTCA",
                "version_info": cfg.version,
                "secret": {
                    "name": "ROOTCA",
                    "validation_context": {
                        "trusted_ca": {
                            "inline_bytes": base64.b64encode(
                                rt.cert.root_bundle_pem.encode()
                            ).decode()
                        }
                    },
                },
            },
        ]
    return {
        "configs": [
            {
                "@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump",
                "bootstrap": {"node": _node(rt)},
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "version_info": cfg.version,
                "dynamic_active_clusters": clusters,
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                "version_info": cfg.version,
                "dynamic_listeners": listeners,
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
                "dynamic_route_configs": routes,
            },
            {
                "@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
                "dynamic_active_secrets": secrets,
            },
        ]
        + ([_endpoints_dump(rt)] if include_eds else [])
    }


def _server_info(rt: Runtime) -> dict[str, Any]:
    up = int(time.time() - rt.started)
    return {
        "version": ENVOY_VERSION,
        "state": "LIVE" if rt.config is not None else "PRE_INITIALIZING",
        "uptime_current_epoch": f"{up}s",
        "uptime_all_epochs": f"{up}s",
        "node": _node(rt) if rt.config is not None else {},
        "command_line_options": {"concurrency": 2, "log_level": "warning"},
    }


async def admin_handler(rt: Runtime, req: Request, _w: asyncio.StreamWriter) -> Response:
    parts = urlsplit(req.path)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    path = parts.path.rstrip("/") or "/"
    if path in ("/stats", "/stats/prometheus"):
        rt.refresh_server_gauges()
    if path == "/stats":
        fmt = query.get("format", "")
        if fmt == "json":
            return _json(rt.stats.render_json())
        if fmt == "prometheus":
            return _text(200, prometheus_text(rt))
        return _text(200, rt.stats.render_text(query.get("filter")))
    if path == "/stats/prometheus":
        return _text(200, prometheus_text(rt))
    if path == "/clusters":
        return _text(200, render_clusters(rt))
    if path == "/config_dump":
        return _json(config_dump(rt, include_eds="include_eds" in query))
    if path == "/server_info":
        return _json(_server_info(rt))
    if path == "/ready":
        if rt.draining:
            return _text(503, "DRAINING\n")
        ok = rt.config is not None
        return _text(200 if ok else 503, "LIVE\n" if ok else "PRE_INITIALIZING\n")
    if path == "/listeners":
        ports = [p.port for p in rt.config.inbound.ports] if rt.config else []
        return _text(200, "".join(f"0.0.0.0_{p}::0.0.0.0:{p}\n" for p in [15001, 15006, *ports]))
    if path == "/certs":
        return _json(
            {
                "certificates": []
                if rt.cert is None
                else [
                    {
                        "cert_chain": [
                            {
                                "expiration_time": rt.cert_expiry.isoformat()
                                if rt.cert_expiry
                                else ""
                            }
                        ],
                    }
                ]
            }
        )
    return _text(
        404,
        "invalid path. admin commands are: /clusters /config_dump /certs /listeners "
        "/ready /server_info /stats /stats/prometheus\n",
    )


async def health_handler(rt: Runtime, req: Request, _w: asyncio.StreamWriter) -> Response:
    path = urlsplit(req.path).path
    if path == "/healthz/ready":
        ok, why = rt.ready()
        return _text(200 if ok else 503, "" if ok else why + "\n")
    return _text(404, "")


async def app_health(rt: Runtime, path: str) -> Response:
    """pilot-agent's probe rewrite: run the app's original probe against its private port."""
    probes = dict(rt.extra_probers)
    if rt.config is not None:
        probes.update(rt.config.app_probers)
    probe = probes.get(path)
    if probe is None or rt.config is None:
        return _text(404, f"no probe registered for {path}\n")
    inbound = rt.config.inbound
    address = inbound.app_address or rt.identity.pod_ip
    port = next((p.app_port for p in inbound.ports if p.port == probe.port), probe.port)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port), probe.timeout
        )
    except (OSError, TimeoutError) as exc:
        return _text(500, f"probe of {address}:{port} failed: {exc!r}\n")
    try:
        if not probe.path:
            return _text(200, "")
        writer.write(
            Request(
                "GET",
                probe.path,
                Headers(
                    [
                        ("host", f"{address}:{probe.port}"),
                        ("user-agent", "kube-probe/1.33"),
                        ("connection", "close"),
                    ]
                ),
            ).encode()
        )
        await writer.drain()
        resp = await asyncio.wait_for(read_response(reader), probe.timeout)
    except (OSError, TimeoutError, HttpParseError) as exc:
        return _text(500, f"probe of {address}:{port}{probe.path} failed: {exc!r}\n")
    finally:
        writer.close()
    return _text(resp.status, "")


def drain(rt: Runtime, req: Request, writer: asyncio.StreamWriter) -> Response:
    """pilot-agent's ``/drain`` on its status port: POST from inside the pod only, then Envoy
    drains (istio/istio ``pilot/cmd/pilot-agent/status/server.go`` ``handleDrain``). A native
    sidecar's preStop hook calls it, so the proxy stops reporting ready while the app stops."""
    peer = writer.get_extra_info("peername")
    local = {"127.0.0.1", "::1"}
    if rt.config is not None:
        local.add(rt.identity.pod_ip)
    if not peer or peer[0] not in local:
        return _text(403, "Only requests from localhost are allowed\n")
    if req.method != "POST":
        return _text(405, "Method Not Allowed\n")
    if not rt.draining:
        rt.draining = True
        rt.log("handling /drain, starting drain")
    return _text(200, "OK")


async def metrics_handler(rt: Runtime, req: Request, _w: asyncio.StreamWriter) -> Response:
    path = urlsplit(req.path).path
    if path == "/drain":
        return drain(rt, req, _w)
    if path.startswith("/app-health/"):
        return await app_health(rt, path)
    if path == "/stats/prometheus":
        return _text(200, prometheus_text(rt), "text/plain; version=0.0.4; charset=utf-8")
    if path == "/healthz/ready":
        return await health_handler(rt, req, _w)
    return _text(404, "")
