"""Gateway modes: the east-west gateway (SNI passthrough) and the ingress gateway.

East-west (``ISTIO_META_ROUTER_MODE=sni-dnat``, Gateway ``AUTO_PASSTHROUGH``
on 15443): the gateway never terminates the mTLS between the two sidecars. It
reads the SNI ``outbound_.<port>_.<subset>_.<fqdn>`` from the ClientHello,
picks one of this cluster's endpoints of that service and relays raw bytes,
adding the configured WAN delay to every chunk in each direction, so a
cross-cluster round trip costs what a WAN would. Its clusters are named by
the SNI (``outbound_.5000_._.helloworld.sample.svc.cluster.local``) and it
reports TCP metrics.

Ingress: Gateway servers on the pod's ports; HTTP with ``httpsRedirect``
answers 301 to ``https://``; HTTPS ``SIMPLE`` terminates TLS with the server's
certificate (chosen by SNI when several servers share a port); requests are
routed by Host and URI to mesh services over mTLS, reported as source.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time

from meshproof.lab.mesh.config import GatewayServer, parse_sni
from meshproof.lab.mesh.http1 import Headers, HttpParseError, Request, Response, read_request
from meshproof.lab.mesh.netio import peek_client_hello, relay, reset, sock_addr, wrap
from meshproof.lab.mesh.outbound import forward, local_reply
from meshproof.lab.mesh.routing import domain_matches, split_authority
from meshproof.lab.mesh.runtime import Runtime
from meshproof.lab.mesh.telemetry import PeerInfo, access_log_line, traffic_labels
from meshproof.lab.mesh.tls import client_hello_sni, simple_server_context
from meshproof.lab.mesh.upstream import ConnectFailure, Overflow

__all__ = ["accept_east_west", "accept_ingress", "ingress_tls_context"]

_HELLO_TIMEOUT = 10.0


async def accept_east_west(rt: Runtime, sock: socket.socket, listen_port: int) -> None:
    """One connection to 15443: route on SNI, relay with the WAN delay."""
    if rt.config is None:
        reset(sock)
        return
    local = sock_addr(sock.getsockname())
    remote = sock_addr(sock.getpeername())
    listener = f"0.0.0.0_{listen_port}"
    hello = await peek_client_hello(sock, timeout=_HELLO_TIMEOUT)
    sni = client_hello_sni(hello) if hello else None
    cluster = rt.cluster_for_sni(sni) if sni else None
    if cluster is None:
        rt.stats.inc("listener", listener, "no_filter_chain_match")
        rt.log(
            access_log_line(
                flags="NR",
                details="filter_chain_not_found",
                sni=sni or "-",
                downstream_local=local,
                downstream_remote=remote,
            )
        )
        reset(sock)
        return
    parsed = parse_sni(sni or "")
    assert parsed is not None
    ident = rt.identity
    dest_service = parsed[2]
    start = time.monotonic()
    tried: set[str] = set()
    upstream = None
    host = None
    overflowed = False
    for _ in range(2):  # a failed connect is retried once on another endpoint
        host = cluster.pick(exclude=frozenset(tried))
        if host is None:
            break
        tried.add(host.key)
        try:
            conn = await cluster.acquire(host, None, sni="", local_addr=ident.pod_ip)
        except ConnectFailure:
            cluster.record(host, None)
            continue
        except Overflow:
            overflowed = True  # the gateway's own circuit breaker: shed the connection
            break
        upstream = conn
        break
    if upstream is None or host is None:
        flags = "UH" if host is None else ("UO" if overflowed else "UF")
        rt.log(
            access_log_line(
                flags=flags,
                sni=sni or "-",
                upstream_cluster=cluster.name,
                downstream_local=local,
                downstream_remote=remote,
            )
        )
        reset(sock)
        return
    labels = traffic_labels(
        reporter="source",
        source=PeerInfo.of(ident),
        destination=PeerInfo(cluster=host.endpoint.cluster or ident.cluster),
        destination_service=dest_service,
        response_code=None,
        response_flags="-",
        security_policy="unknown",
        protocol="tcp",
    )
    rt.metrics.tcp_add("istio_tcp_connections_opened_total", labels)
    downstream = await wrap(sock)

    def wan() -> tuple[float, float] | None:
        # The gateway's current config: a WAN that changed applies to this open connection too.
        config = rt.config
        if config is None:
            return None
        return (config.east_west.wan_delay.min_ms, config.east_west.wan_delay.max_ms)

    try:
        received, sent = await relay(downstream, (upstream.reader, upstream.writer), delay_ms=wan)
    finally:
        cluster.release(host, upstream, reusable=False)
    cluster.record(host, 200)
    rt.metrics.tcp_add("istio_tcp_connections_closed_total", labels)
    rt.metrics.tcp_add("istio_tcp_received_bytes_total", labels, received)
    rt.metrics.tcp_add("istio_tcp_sent_bytes_total", labels, sent)
    rt.stats.cluster_inc(cluster.name, "upstream_cx_tx_bytes_total", received)
    rt.stats.cluster_inc(cluster.name, "upstream_cx_rx_bytes_total", sent)
    rt.log(
        access_log_line(
            code=0,
            received=received,
            sent=sent,
            duration_ms=int((time.monotonic() - start) * 1000),
            upstream_host=host.key,
            upstream_cluster=cluster.name,
            downstream_local=local,
            downstream_remote=remote,
            sni=sni or "-",
        )
    )


def ingress_tls_context(servers: list[GatewayServer], *, what: str) -> ssl.SSLContext | None:
    """One context for an HTTPS port; with several servers, the SNI picks the certificate."""
    tls = [s for s in servers if s.protocol == "HTTPS" and s.tls_mode == "SIMPLE"]
    if not tls:
        return None
    contexts = [(s, simple_server_context(s.cert_chain_pem, s.key_pem, what=what)) for s in tls]
    first = contexts[0][1]
    if len(contexts) > 1:

        def choose(sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            for server, ctx in contexts:
                if name and any(domain_matches(h, name.lower()) for h in server.hosts):
                    sock.context = ctx
                    return

        first.sni_callback = choose
    return first


async def accept_ingress(
    rt: Runtime, sock: socket.socket, listen_port: int, tls_ctx: ssl.SSLContext | None
) -> None:
    """One client connection to an ingress gateway port."""
    if rt.config is None:
        reset(sock)
        return
    servers = [s for s in rt.config.ingress.servers if s.port == listen_port]
    remote = sock_addr(sock.getpeername())
    https = tls_ctx is not None
    listener = f"0.0.0.0_{listen_port}"
    if https:
        try:
            reader, writer = await wrap(sock, ssl_ctx=tls_ctx, handshake_timeout=_HELLO_TIMEOUT)
        except (TimeoutError, ssl.SSLError, OSError):
            rt.stats.inc("listener", listener, "ssl.connection_error")
            return
        rt.stats.inc("listener", listener, "ssl.handshake")
    else:
        reader, writer = await wrap(sock)
    try:
        while (req := await read_request(reader, writer)) is not None:
            resp = await _ingress_request(rt, req, servers, listen_port, https, remote)
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


async def _ingress_request(
    rt: Runtime, req: Request, servers: list[GatewayServer], port: int, https: bool, remote: str
) -> Response:
    host, _ = split_authority(req.authority, 443 if https else 80)
    server = next((s for s in servers if any(domain_matches(h, host) for h in s.hosts)), None)
    if server is None:
        return local_reply(404, "")
    if server.https_redirect and not https:
        return Response(
            status=301,
            headers=Headers(
                [
                    ("location", f"https://{host}{req.path}"),
                    ("server", "istio-envoy"),
                    ("date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())),
                ]
            ),
        )
    req.headers.set("x-forwarded-for", remote.rsplit(":", 1)[0])
    req.headers.remove("x-forwarded-client-cert")  # SANITIZE_SET at the edge
    resolved = rt.routes.resolve_gateway(req.authority, port)
    resp = await forward(
        rt,
        req,
        resolved,
        source=PeerInfo.of(rt.identity),
        forwarded_proto="https" if https else "http",
        downstream_remote=remote,
    )
    resp.headers.set("server", "istio-envoy")
    return resp
