"""The outbound (client) side: routes, faults, retries, timeouts, circuit breaking, upstream mTLS.

Sidecars receive their app's requests on ``<pod IP>:15001`` as an HTTP forward
proxy (``HTTP_PROXY=http://<pod IP>:15001``, absolute-form targets) or in
origin-form with a ``Host`` header; the ingress gateway hands its routed
requests to the same ``forward``. Local replies carry Envoy's bodies and
response flags (FACTS.md "Response flags"); every request is recorded by the
source reporter.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import time
import uuid
from dataclasses import dataclass

from meshproof.lab.mesh.config import HttpRoute, Retries, RouteDestination, sni_for
from meshproof.lab.mesh.http1 import (
    Headers,
    HttpParseError,
    Request,
    Response,
    read_request,
    read_response,
)
from meshproof.lab.mesh.netio import wrap
from meshproof.lab.mesh.routing import (
    Resolved,
    fault_abort,
    fault_delay,
    match_route,
    pick_destination,
    split_authority,
)
from meshproof.lab.mesh.runtime import Runtime
from meshproof.lab.mesh.telemetry import (
    PEER_METADATA,
    PEER_METADATA_ID,
    PeerInfo,
    access_log_line,
    decode_peer_metadata,
    encode_peer_metadata,
    strip_peer_metadata,
    traffic_labels,
)
from meshproof.lab.mesh.tls import PeerIdentity
from meshproof.lab.mesh.upstream import (
    ConnectFailure,
    Host,
    Overflow,
    UpstreamCluster,
    UpstreamConn,
)

__all__ = ["Outcome", "accept_outbound", "forward", "local_reply", "serve_outbound"]

UPSTREAM_RESET = "upstream connect error or disconnect/reset before headers. reset reason: "
RETRY_BACKOFF_BASE = 0.025
"""Envoy's default retry back-off base interval (seconds); the cap is ten times it."""
HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade")


class UpstreamReset(Exception):
    """The upstream connection broke after the request was sent."""


@dataclass(slots=True)
class Outcome:
    """How a forwarded request ended, for metrics and the access log."""

    response: Response
    flags: str = "-"
    upstream_host: str = ""
    cluster: str = "-"
    destination: PeerInfo | None = None
    destination_service: str = "unknown"
    upstream_ms: int | None = None


def local_reply(status: int, body: str, *, extra: dict[str, str] | None = None) -> Response:
    """A response the proxy makes itself, shaped like Envoy's (``server: envoy``, text body)."""
    headers = Headers([("content-type", "text/plain")])
    for k, v in (extra or {}).items():
        headers.set(k, v)
    headers.set("date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
    headers.set("server", "envoy")
    return Response(status=status, headers=headers, body=body.encode())


async def serve_outbound(
    rt: Runtime, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One app connection to 15001: requests until the app closes it."""
    try:
        while (req := await read_request(reader, writer)) is not None:
            resp = await handle_sidecar_request(rt, req)
            writer.write(resp.encode(head_only=req.method == "HEAD"))
            await writer.drain()
            if not req.keep_alive:
                break
    except HttpParseError:
        writer.write(local_reply(400, "Bad Request").encode())
    finally:
        writer.close()


async def handle_sidecar_request(rt: Runtime, req: Request) -> Response:
    """Resolve the app's request to a mesh service (or pass an IP literal through) and send it."""
    ident = rt.identity
    authority = req.authority
    resolved = rt.routes.resolve_service(authority, ident.namespace)
    if resolved is None:
        host, port = split_authority(authority, 80)
        if _is_ip(host):
            return await _passthrough(rt, req, host, port)
    return await forward(rt, req, resolved, source=PeerInfo.of(ident))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


async def _passthrough(rt: Runtime, req: Request, host: str, port: int) -> Response:
    """ALLOW_ANY: a request for an address the mesh does not know goes out as it is."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10.0)
    except (TimeoutError, OSError):
        return local_reply(503, UPSTREAM_RESET + "connection failure")
    try:
        headers = req.headers.copy()
        headers.set("connection", "close")
        writer.write(Request(req.method, req.path, headers, req.body).encode())
        await writer.drain()
        return await read_response(reader, method=req.method)
    except (OSError, HttpParseError, asyncio.IncompleteReadError):
        return local_reply(503, UPSTREAM_RESET + "connection termination")
    finally:
        writer.close()


async def forward(
    rt: Runtime,
    req: Request,
    resolved: Resolved | None,
    *,
    source: PeerInfo,
    forwarded_proto: str = "http",
    downstream_remote: str = "-",
) -> Response:
    """Route ``req`` and send it upstream; records the source reporter's metrics and log."""
    start = time.monotonic()
    if not req.headers.get("x-request-id"):
        req.headers.set("x-request-id", str(uuid.uuid4()))
    req.headers.set("x-forwarded-proto", req.headers.get("x-forwarded-proto") or forwarded_proto)
    if resolved is None:
        outcome = Outcome(local_reply(404, ""), flags="NR")
    else:
        outcome = await _route(rt, req, resolved)
    resp = outcome.response
    strip_peer_metadata(resp.headers)
    for name in HOP_BY_HOP:
        resp.headers.remove(name)
    if outcome.upstream_ms is not None:
        resp.headers.set("x-envoy-upstream-service-time", str(outcome.upstream_ms))
    resp.headers.set("server", "envoy")  # the sidecar's connection manager overwrites it
    duration = (time.monotonic() - start) * 1000.0
    dest = outcome.destination or PeerInfo()
    labels = traffic_labels(
        reporter="source",
        source=source,
        destination=dest,
        destination_service=outcome.destination_service,
        response_code=resp.status,
        response_flags=outcome.flags,
        security_policy="unknown",
    )
    rt.metrics.record_request(
        labels, duration_ms=duration, request_bytes=len(req.body), response_bytes=len(resp.body)
    )
    rt.log(
        access_log_line(
            method=req.method,
            path=req.path,
            protocol=req.version,
            code=resp.status,
            flags=outcome.flags,
            details="via_upstream" if outcome.upstream_ms is not None else "-",
            received=len(req.body),
            sent=len(resp.body),
            duration_ms=int(duration),
            upstream_ms=str(outcome.upstream_ms) if outcome.upstream_ms is not None else "-",
            user_agent=req.headers.get("user-agent"),
            request_id=req.headers.get("x-request-id"),
            authority=req.authority,
            upstream_host=outcome.upstream_host or None,
            upstream_cluster=outcome.cluster,
            downstream_remote=downstream_remote,
        )
    )
    return resp


async def _route(rt: Runtime, req: Request, resolved: Resolved) -> Outcome:
    route = match_route(resolved.vhost, req)
    if route is None:
        return Outcome(local_reply(404, ""), flags="NR", destination_service=resolved.host)
    flags: list[str] = []
    delay = fault_delay(route.fault)
    if delay is not None:
        flags.append("DI")
        await asyncio.sleep(delay)
    dest = pick_destination(route)
    abort = fault_abort(route.fault)
    if abort is not None:
        flags.append("FI")
        return Outcome(
            local_reply(abort, "fault filter abort"),
            flags=join_flags(flags),
            destination_service=dest.host,
        )
    cluster = rt.cluster_for(dest.port, dest.host, dest.subset)
    if cluster is None:
        return Outcome(
            local_reply(503, ""), flags=join_flags([*flags, "NC"]), destination_service=dest.host
        )
    try:
        if route.timeout:
            outcome = await asyncio.wait_for(
                _with_retries(rt, req, route, dest, cluster), route.timeout
            )
        else:
            outcome = await _with_retries(rt, req, route, dest, cluster)
    except TimeoutError:
        rt.stats.cluster_inc(cluster.name, "upstream_rq_timeout")
        outcome = Outcome(
            local_reply(504, "upstream request timeout"),
            flags="UT",
            cluster=cluster.name,
            destination_service=dest.host,
        )
    if flags:
        outcome.flags = join_flags(flags + outcome.flags.split(","))
    return outcome


# Envoy prints response flags in this fixed order (source/common/stream_info/utility.h).
_FLAG_ORDER = [
    "LH",
    "UH",
    "UT",
    "LR",
    "UR",
    "UF",
    "UC",
    "UO",
    "NR",
    "DI",
    "FI",
    "RL",
    "UAEX",
    "RLSE",
    "DC",
    "URX",
    "SI",
    "IH",
    "DPE",
    "UMSDR",
    "RFCF",
    "NFCF",
    "DT",
    "UPE",
    "NC",
    "OM",
    "DF",
    "DO",
    "DR",
]


def join_flags(flags: list[str]) -> str:
    """Envoy's short form of a set of response flags: ``-`` for none, else comma-joined in order."""
    present = {f for f in flags if f and f != "-"}
    ordered = [f for f in _FLAG_ORDER if f in present]
    return ",".join(ordered) or "-"


def _retriable(retries: Retries, *, status: int | None, connect_failure: bool) -> bool:
    on = {p.strip() for p in retries.retry_on.split(",")}
    if connect_failure:
        return bool(on & {"connect-failure", "5xx", "gateway-error"})
    if status is None:
        return bool(on & {"reset", "5xx"})
    if "retriable-status-codes" in on and status in retries.retriable_status_codes:
        return True
    if "5xx" in on and status >= 500:
        return True
    return "gateway-error" in on and status in (502, 503, 504)


async def _with_retries(
    rt: Runtime, req: Request, route: HttpRoute, dest: RouteDestination, cluster: UpstreamCluster
) -> Outcome:
    retries = route.retries
    tried: set[str] = set()
    attempts = 1 + max(0, retries.attempts)
    base = Outcome(
        local_reply(503, "no healthy upstream"),
        flags="UH",
        cluster=cluster.name,
        destination_service=dest.host,
    )
    for attempt in range(attempts):
        last = attempt == attempts - 1
        host = cluster.pick(exclude=frozenset(tried))
        if host is None:
            rt.stats.cluster_inc(cluster.name, "upstream_cx_none_healthy")
            return base
        tried.add(host.key)
        dest_peer = _endpoint_peer(host)
        try:
            cluster.begin_request()
        except Overflow:
            return _overflow(cluster, dest.host)
        host.rq_active += 1
        cluster.retries_active += int(attempt > 0)
        t0 = time.monotonic()
        try:
            if retries.per_try_timeout:
                resp, conn_peer = await asyncio.wait_for(
                    _attempt(rt, req, cluster, host), retries.per_try_timeout
                )
            else:
                resp, conn_peer = await _attempt(rt, req, cluster, host)
        except Overflow:
            return _overflow(cluster, dest.host)
        except ConnectFailure:
            cluster.record(host, None)
            host.rq_error += 1
            if (
                not last
                and _retriable(retries, status=None, connect_failure=True)
                and await _retry_allowed(rt, cluster, attempt)
            ):
                continue
            flags = "UF,URX" if attempt > 0 else "UF"
            return Outcome(
                local_reply(503, UPSTREAM_RESET + "connection failure"),
                flags=flags,
                upstream_host=host.key,
                cluster=cluster.name,
                destination=dest_peer,
                destination_service=dest.host,
            )
        except UpstreamReset:
            cluster.record(host, None)
            host.rq_error += 1
            if (
                not last
                and _retriable(retries, status=None, connect_failure=False)
                and await _retry_allowed(rt, cluster, attempt)
            ):
                continue
            return Outcome(
                local_reply(503, UPSTREAM_RESET + "connection termination"),
                flags="UC,URX" if attempt > 0 else "UC",
                upstream_host=host.key,
                cluster=cluster.name,
                destination=dest_peer,
                destination_service=dest.host,
            )
        except TimeoutError:
            cluster.record(host, None)
            host.rq_timeout += 1
            rt.stats.cluster_inc(cluster.name, "upstream_rq_per_try_timeout")
            if (
                not last
                and _retriable(retries, status=504, connect_failure=False)
                and await _retry_allowed(rt, cluster, attempt)
            ):
                continue
            return Outcome(
                local_reply(504, "upstream request timeout"),
                flags="UT",
                upstream_host=host.key,
                cluster=cluster.name,
                destination=dest_peer,
                destination_service=dest.host,
            )
        finally:
            host.rq_active -= 1
            cluster.retries_active -= int(attempt > 0)
            cluster.end_request()
        upstream_ms = int((time.monotonic() - t0) * 1000)
        _count_response(rt, cluster, host, resp.status)
        cluster.record(host, resp.status)
        principal = conn_peer.spiffe if conn_peer is not None and conn_peer.spiffe else "unknown"
        peer = decode_peer_metadata(resp.headers, principal=principal) or dest_peer.with_principal(
            principal
        )
        if (
            not last
            and _retriable(retries, status=resp.status, connect_failure=False)
            and await _retry_allowed(rt, cluster, attempt)
        ):
            continue
        retried_out = attempt > 0 and _retriable(retries, status=resp.status, connect_failure=False)
        return Outcome(
            resp,
            flags="URX" if retried_out else "-",
            upstream_host=host.key,
            cluster=cluster.name,
            destination=peer,
            destination_service=dest.host,
            upstream_ms=upstream_ms,
        )
    return base


async def _retry_allowed(rt: Runtime, cluster: UpstreamCluster, attempt: int) -> bool:
    """Whether the retry budget (``max_retries`` breaker) allows another try; if so, count it
    and sleep Envoy's back-off (full jitter, doubling from 25 ms, capped at 250 ms)."""
    if cluster.retries_active >= cluster.config.connection_pool.max_retries:
        rt.stats.cluster_inc(cluster.name, "upstream_rq_retry_overflow")
        return False
    rt.stats.cluster_inc(cluster.name, "upstream_rq_retry")
    ceiling = min(RETRY_BACKOFF_BASE * (2 ** (attempt + 1) - 1), 10 * RETRY_BACKOFF_BASE)
    await asyncio.sleep(random.uniform(0, ceiling))
    return True


def _overflow(cluster: UpstreamCluster, service: str) -> Outcome:
    return Outcome(
        local_reply(503, UPSTREAM_RESET + "overflow", extra={"x-envoy-overloaded": "true"}),
        flags="UO",
        cluster=cluster.name,
        destination_service=service,
    )


def _endpoint_peer(host: Host) -> PeerInfo:
    """What the endpoint's own metadata says (used when the response carries none)."""
    ep = host.endpoint
    labels = ep.labels
    app = labels.get("app") or labels.get("app.kubernetes.io/name") or "unknown"
    version = labels.get("version") or labels.get("app.kubernetes.io/version") or "unknown"
    return PeerInfo(
        workload=ep.workload or labels.get("workload", "unknown"),
        namespace=ep.namespace or labels.get("namespace", "unknown"),
        app=app,
        version=version,
        canonical_service=labels.get("service.istio.io/canonical-name", app),
        canonical_revision=labels.get(
            "service.istio.io/canonical-revision", version if version != "unknown" else "latest"
        ),
        cluster=ep.cluster or "unknown",
    )


def _count_response(rt: Runtime, cluster: UpstreamCluster, host: Host, status: int) -> None:
    host.rq_total += 1
    if status >= 500:
        host.rq_error += 1
    else:
        host.rq_success += 1
    for stat in (
        "upstream_rq_total",
        f"upstream_rq_{status}",
        f"upstream_rq_{status // 100}xx",
        "upstream_rq_completed",
    ):
        rt.stats.cluster_inc(cluster.name, stat)


async def _attempt(
    rt: Runtime, req: Request, cluster: UpstreamCluster, host: Host
) -> tuple[Response, PeerIdentity | None]:
    """One try on one host: a pooled connection, the request, the whole response."""
    oc = cluster.config
    ssl_ctx = rt.client_ctx if oc.tls_mode == "ISTIO_MUTUAL" else None
    sni = host.endpoint.sni or sni_for(oc.port, oc.service, oc.subset)
    ident = rt.identity
    headers = req.headers.copy()
    headers.remove("proxy-connection")
    headers.remove("proxy-authorization")
    headers.remove("connection")
    headers.remove("keep-alive")
    if not headers.get("host"):
        headers.set("host", req.authority)
    meta, meta_id = encode_peer_metadata(ident)
    headers.set(PEER_METADATA, meta)
    headers.set(PEER_METADATA_ID, meta_id)
    data = Request(req.method, req.path, headers, req.body).encode()
    for fresh in (False, True):
        conn: UpstreamConn = await cluster.acquire(host, ssl_ctx, sni=sni, local_addr=ident.pod_ip)
        reused = conn.requests > 0
        try:
            conn.writer.write(data)
            await conn.writer.drain()
            resp = await read_response(conn.reader, method=req.method)
        except (ConnectionError, OSError, HttpParseError, asyncio.IncompleteReadError) as exc:
            cluster.release(host, conn, reusable=False)
            if reused and not fresh:
                continue  # the peer closed an idle keep-alive connection: use a new one
            raise UpstreamReset(str(exc)) from exc
        except BaseException:
            cluster.release(host, conn, reusable=False)
            raise
        cluster.release(host, conn, reusable=resp.reusable)
        return resp, conn.peer
    raise UpstreamReset("no usable connection")


async def accept_outbound(rt: Runtime, sock: socket.socket) -> None:
    """Listener entry point for 15001 (a raw accepted socket)."""
    reader, writer = await wrap(sock)
    await serve_outbound(rt, reader, writer)
