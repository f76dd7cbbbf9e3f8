"""The inbound (server) side of a sidecar: PeerAuthentication, authorization, XFCC, the app.

The proxy owns the workload's ports on the pod IP (and 15006): the lab starts
the app on a private port (``InboundPort.app_port``) instead, so a plaintext
client outside the mesh that dials ``<pod IP>:<service target port>`` reaches
this proxy, exactly as iptables would have redirected it. The first byte
decides: a TLS record (0x16) is mutual TLS, anything else plaintext.

- STRICT: plaintext is reset (RST) and logged ``NR filter_chain_not_found``.
- PERMISSIVE: both are served.
- DISABLE: plaintext only; TLS is not terminated.

The app is reached in plaintext on ``app_address`` (default the pod IP).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

from meshproof.lab.mesh.config import AuthorizationPolicy, AuthzRule, InboundPort, parse_sni
from meshproof.lab.mesh.http1 import HttpParseError, Request, Response, read_request, read_response
from meshproof.lab.mesh.netio import peek, peek_client_hello, reset, sock_addr, wrap
from meshproof.lab.mesh.outbound import UPSTREAM_RESET, local_reply
from meshproof.lab.mesh.routing import fqdn_candidates, split_authority
from meshproof.lab.mesh.runtime import INBOUND_LISTENER, Runtime
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
from meshproof.lab.mesh.tls import (
    PeerIdentity,
    classify_handshake_error,
    client_hello_sni,
    peer_identity,
)

__all__ = ["accept_inbound", "authorize"]

_PEEK_TIMEOUT = 10.0
_APP_IDLE_MAX = 64
"""Idle keep-alive connections kept per app port."""


def _principal_matches(pattern: str, principal: str) -> bool:
    if pattern == "*":
        return bool(principal)
    if pattern.startswith("*"):
        return principal.endswith(pattern[1:])
    if pattern.endswith("*"):
        return principal.startswith(pattern[:-1])
    return principal == pattern


def _rule_matches(rule: AuthzRule, principal: str, namespace: str, req: Request) -> bool:
    if rule.principals and not any(_principal_matches(p, principal) for p in rule.principals):
        return False
    if rule.namespaces and not any(_principal_matches(n, namespace) for n in rule.namespaces):
        return False
    path = req.path.split("?", 1)[0]
    if rule.paths and not any(_principal_matches(p, path) for p in rule.paths):
        return False
    return not rule.methods or req.method in rule.methods


def authorize(policies: list[AuthorizationPolicy], peer: PeerIdentity | None, req: Request) -> bool:
    """Istio's order: any matching DENY denies; with ALLOW policies, one must match."""
    spiffe = peer.spiffe if peer else ""
    principal = spiffe.removeprefix("spiffe://")  # policies write principals without the scheme
    parts = principal.split("/")
    namespace = parts[parts.index("ns") + 1] if "ns" in parts[:-1] else ""
    for pol in policies:
        if pol.action == "DENY" and any(
            _rule_matches(r, principal, namespace, req) for r in pol.rules
        ):
            return False
    allows = [p for p in policies if p.action == "ALLOW"]
    if not allows:
        return True
    return any(_rule_matches(r, principal, namespace, req) for p in allows for r in p.rules)


async def accept_inbound(rt: Runtime, sock: socket.socket, listen_port: int) -> None:
    """Listener entry point for a workload port or 15006."""
    if rt.config is None:
        reset(sock)
        return
    local = sock_addr(sock.getsockname())
    remote = sock_addr(sock.getpeername())
    first = await peek(sock, 1, timeout=_PEEK_TIMEOUT)
    if not first:
        return
    is_tls = first == b"\x16"
    port = rt.inbound_port(listen_port)
    if port is None:
        # Direct to 15006: the SNI the client sent (outbound_.<port>_…) names the service port.
        sni = (
            client_hello_sni(await peek_client_hello(sock, timeout=_PEEK_TIMEOUT))
            if is_tls
            else None
        )
        parsed = parse_sni(sni or "")
        ports = rt.config.inbound.ports
        port = next(
            (p for p in ports if parsed and p.port == parsed[0]), ports[0] if ports else None
        )
    if port is None:
        _refuse(rt, sock, local, remote)
        return
    if not is_tls and port.mtls_mode == "STRICT":
        _refuse(rt, sock, local, remote)
        return
    if is_tls and port.mtls_mode != "DISABLE":
        ctx = rt.server_ctx
        if ctx is None:
            _refuse(rt, sock, local, remote)
            return
        try:
            reader, writer = await wrap(sock, ssl_ctx=ctx, handshake_timeout=_PEEK_TIMEOUT)
        except (TimeoutError, ssl.SSLError, OSError) as exc:
            rt.stats.inc("listener", INBOUND_LISTENER, "ssl.connection_error")
            for stat in classify_handshake_error(exc):
                rt.stats.inc("listener", INBOUND_LISTENER, f"ssl.{stat}")
            rt.log(
                access_log_line(
                    code=0,
                    flags="-",
                    details=f"tls_error:{type(exc).__name__}",
                    downstream_local=local,
                    downstream_remote=remote,
                )
            )
            return
        rt.stats.inc("listener", INBOUND_LISTENER, "ssl.handshake")
        peer = peer_identity(writer.get_extra_info("ssl_object"))
    else:
        reader, writer = await wrap(sock)
        peer = None
    rt.stats.inc("listener", INBOUND_LISTENER, "downstream_cx_total")
    try:
        while (req := await read_request(reader, writer)) is not None:
            resp = await _handle(rt, req, port, peer, remote)
            writer.write(resp.encode(head_only=req.method == "HEAD"))
            await writer.drain()
            if not req.keep_alive:
                break
    except HttpParseError:
        writer.write(local_reply(400, "Bad Request").encode())
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def _refuse(rt: Runtime, sock: socket.socket, local: str, remote: str) -> None:
    rt.stats.inc("listener", INBOUND_LISTENER, "no_filter_chain_match")
    rt.log(
        access_log_line(
            code=0,
            flags="NR",
            details="filter_chain_not_found",
            downstream_local=local,
            downstream_remote=remote,
        )
    )
    reset(sock)


def _destination_service(rt: Runtime, req: Request, port: InboundPort) -> str:
    if port.service:
        return port.service
    host, _ = split_authority(req.authority, 80)
    if not host:
        return "unknown"
    return fqdn_candidates(host, rt.identity.namespace)[0]


async def _handle(
    rt: Runtime, req: Request, port: InboundPort, peer: PeerIdentity | None, remote: str
) -> Response:
    assert rt.config is not None
    start = time.monotonic()
    ident = rt.identity
    stat_prefix = f"inbound_0.0.0.0_{port.port}"
    principal = peer.spiffe if peer and peer.spiffe else "unknown"
    source = decode_peer_metadata(req.headers, principal=principal) or PeerInfo(principal=principal)
    flags = "-"
    upstream_ms: int | None = None
    if not authorize(rt.config.inbound.policies, peer, req):
        rt.stats.inc("http", stat_prefix, "rbac.denied")
        resp = local_reply(403, "RBAC: access denied")
    else:
        if rt.config.inbound.policies:
            rt.stats.inc("http", stat_prefix, "rbac.allowed")
        headers = req.headers.copy()
        strip_peer_metadata(headers)
        if peer is not None:
            headers.set(
                "x-forwarded-client-cert",
                f'By={ident.spiffe};Hash={peer.cert_sha256};Subject="";URI={peer.spiffe}',
            )
            headers.set("x-forwarded-proto", "https")
        else:
            headers.remove("x-forwarded-client-cert")  # never trust one a plaintext caller sent
        t0 = time.monotonic()
        app_resp = await _to_app(rt, Request(req.method, req.path, headers, req.body), port)
        if app_resp is None:
            flags = "UF"
            resp = local_reply(503, UPSTREAM_RESET + "connection failure")
        else:
            resp = app_resp
            upstream_ms = int((time.monotonic() - t0) * 1000)
            resp.headers.set("x-envoy-upstream-service-time", str(upstream_ms))
    meta, meta_id = encode_peer_metadata(ident)
    resp.headers.set(PEER_METADATA, meta)
    resp.headers.set(PEER_METADATA_ID, meta_id)
    resp.headers.set("server", "istio-envoy")
    duration = (time.monotonic() - start) * 1000.0
    rt.metrics.record_request(
        traffic_labels(
            reporter="destination",
            source=source,
            destination=PeerInfo.of(ident),
            destination_service=_destination_service(rt, req, port),
            response_code=resp.status,
            response_flags=flags,
            security_policy="mutual_tls" if peer is not None else "none",
        ),
        duration_ms=duration,
        request_bytes=len(req.body),
        response_bytes=len(resp.body),
    )
    rt.log(
        access_log_line(
            method=req.method,
            path=req.path,
            protocol=req.version,
            code=resp.status,
            flags=flags,
            details="via_upstream" if upstream_ms is not None else "-",
            received=len(req.body),
            sent=len(resp.body),
            duration_ms=int(duration),
            upstream_ms=str(upstream_ms) if upstream_ms is not None else "-",
            user_agent=req.headers.get("user-agent"),
            request_id=req.headers.get("x-request-id"),
            authority=req.authority,
            upstream_cluster=f"inbound|{port.port}||",
            downstream_remote=remote,
        )
    )
    return resp


async def _to_app(rt: Runtime, req: Request, port: InboundPort) -> Response | None:
    """Send the request to the app on its private port; None if the app does not answer.

    Connections to the app are kept alive and reused (the ``inbound|<port>||`` cluster's
    pool); one that the app closed while idle is replaced transparently."""
    assert rt.config is not None
    address = rt.config.inbound.app_address or rt.identity.pod_ip
    cluster = f"inbound|{port.port}||"
    key = (address, port.app_port)
    idle = rt.app_idle.setdefault(key, [])
    rt.stats.cluster_inc(cluster, "upstream_rq_total")
    data = req.encode()
    while True:
        reused = False
        while idle:
            reader, writer = idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                reused = True
                break
            writer.close()
        if not reused:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(address, port.app_port), 10.0
                )
            except (TimeoutError, OSError):
                rt.stats.cluster_inc(cluster, "upstream_cx_connect_fail")
                return None
        try:
            writer.write(data)
            await writer.drain()
            resp = await read_response(reader, method=req.method)
        except (OSError, HttpParseError, asyncio.IncompleteReadError):
            writer.close()
            if reused:
                continue
            return None
        except BaseException:
            writer.close()
            raise
        break
    if resp.reusable and len(idle) < _APP_IDLE_MAX:
        idle.append((reader, writer))
    else:
        writer.close()
    rt.stats.cluster_inc(cluster, f"upstream_rq_{resp.status}")
    resp.headers.remove("connection")
    resp.headers.remove("keep-alive")
    return resp
