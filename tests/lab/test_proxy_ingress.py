"""Ingress gateway: HTTP → HTTPS redirect, TLS SIMPLE with the configured certificate,
Host + URI prefix routing into the mesh over mTLS."""

from __future__ import annotations

import datetime
import http.client
import socket
import ssl
from collections.abc import Iterator

import pytest
import requests
from cryptography import x509

from meshproof import pki
from meshproof.lab.mesh.config import (
    GatewayServer,
    HttpRoute,
    RouteDestination,
    RouteMatch,
    VirtualHost,
)
from tests.support.mesh import MeshHarness, MeshPki, Pod, make_pki

pytestmark = pytest.mark.lab

API = "api-service.production.svc.cluster.local"


@pytest.fixture(scope="module")
def mesh_pki() -> MeshPki:
    return make_pki()


@pytest.fixture
def gateway(mesh_pki: MeshPki) -> Iterator[tuple[MeshHarness, Pod, Pod, pki.CertKey]]:
    h = MeshHarness(mesh_pki, net=111)
    h.add_service("api-service", port=8080, target_port=8080, namespace="production")
    api = h.add_pod(
        "aws-eks",
        20,
        "api-service-v1-7c9d8",
        app="api-service",
        namespace="production",
        ports={8080: 28080},
    )
    ingress = h.add_pod(
        "aws-eks",
        50,
        "istio-ingressgateway-6b5d9",
        app="istio-ingressgateway",
        namespace="istio-system",
        sa="istio-ingressgateway-service-account",
        mode="ingress",
    )
    server_cert = pki.issue_server_cert(
        mesh_pki.intermediates["aws-eks"], ["*.example.com"], ttl=datetime.timedelta(days=90)
    )
    h.istiod.mtls["production"] = "STRICT"
    h.istiod.gateway_servers = [
        GatewayServer(port=8080, protocol="HTTP", hosts=["*.example.com"], https_redirect=True),
        GatewayServer(
            port=8443,
            protocol="HTTPS",
            hosts=["*.example.com"],
            tls_mode="SIMPLE",
            cert_chain_pem=server_cert.chain_pem().decode(),
            key_pem=server_cert.key_pem().decode(),
        ),
    ]
    h.istiod.gateway_routes = [
        VirtualHost(
            domains=["api.example.com"],
            port=0,
            routes=[
                HttpRoute(
                    matches=[RouteMatch(uri_prefix="/api/v1")],
                    destinations=[RouteDestination(host=API, port=8080)],
                )
            ],
        )
    ]
    try:
        h.start()
        yield h, ingress, api, server_cert
    finally:
        h.close()


def _https_get(
    ip: str, path: str, root_pem: str, host: str = "api.example.com"
) -> tuple[int, bytes, ssl.SSLSocket]:
    ctx = ssl.create_default_context(cadata=root_pem)
    sock = ctx.wrap_socket(socket.create_connection((ip, 8443), timeout=5), server_hostname=host)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    return resp.status, resp.read(), sock


def test_http_redirects_to_https_with_301(gateway) -> None:
    _, ingress, _, _ = gateway
    r = requests.get(
        f"http://{ingress.ip}:8080/api/v1/items?x=1",
        headers={"Host": "api.example.com"},
        allow_redirects=False,
        timeout=5,
    )
    assert r.status_code == 301
    assert r.headers["location"] == "https://api.example.com/api/v1/items?x=1"


def test_https_serves_the_configured_certificate_and_routes_api_v1(gateway, mesh_pki) -> None:
    _, ingress, api, server_cert = gateway
    status, body, sock = _https_get(ingress.ip, "/api/v1/items", mesh_pki.root.cert_pem().decode())
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    assert x509.load_der_x509_certificate(der) == server_cert.cert
    assert status == 200 and b"instance: api-service-v1-7c9d8" in body
    assert api.proxy is not None and ingress.proxy is not None
    # Gateway → sidecar is mutual TLS under STRICT, reported by both sides.
    assert (
        api.proxy.runtime.metrics.requests_total(
            reporter="destination",
            connection_security_policy="mutual_tls",
            source_workload="istio-ingressgateway",
        )
        == 1
    )
    assert (
        ingress.proxy.runtime.metrics.requests_total(
            reporter="source", destination_service=API, response_code="200"
        )
        == 1
    )


def test_paths_outside_the_route_and_unknown_hosts_are_404(gateway, mesh_pki) -> None:
    _, ingress, _, _ = gateway
    root = mesh_pki.root.cert_pem().decode()
    assert _https_get(ingress.ip, "/admin", root)[0] == 404
    assert _https_get(ingress.ip, "/api/v1", root, host="www.example.com")[0] == 404
