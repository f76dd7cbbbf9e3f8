"""Ingress to the cross-cluster sample service, for the traffic benchmarks.

A VirtualService binds ``BENCH_HOST`` on the mesh's public gateway
(``istio-system/public-gateway``, ``*.example.com``) to helloworld, the sample
service whose endpoints are one version per cluster (clusters/workloads): a
reply's version says which cluster served it. The gateway's certificate is
checked against the ingress CA that signed ``tls-cert``.
"""

from __future__ import annotations

import base64
import http.client
import re
import ssl
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.figure import CannotRun
from meshproof.checks.ingress import gateway_address
from meshproof.clients.kube import ClusterApi
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually

__all__ = ["BENCH_HOST", "HELLO_PATH", "IngressEndpoint", "NamedHTTPSConnection", "bench_route",
           "local_versions"]

BENCH_HOST = "hello.example.com"
HELLO_PATH = "/hello"
SAMPLE_NAMESPACE = "sample"
SAMPLE_SERVICE = "helloworld"
SAMPLE_PORT = 5000
ROUTE_NAME = "meshproof-bench-hello"
_VERSION = re.compile(rb"version: (v\d+)")


class IngressEndpoint:
    """One cluster's ingress gateway, reached by address with the bench host's name."""

    def __init__(self, address: str, ca_file: Path) -> None:
        self.address = address
        self.ca_file = ca_file
        self.context = ssl.create_default_context(cafile=str(ca_file))

    def versions(self, requests: int, timeout: float) -> Counter[str]:
        """Which helloworld version answered each of ``requests`` calls (one connection)."""
        seen: Counter[str] = Counter()
        conn = NamedHTTPSConnection(self.address, BENCH_HOST, self.context, timeout)
        try:
            for _ in range(requests):
                conn.request("GET", HELLO_PATH, headers={"Host": BENCH_HOST})
                response = conn.getresponse()
                body = response.read()
                match = _VERSION.search(body)
                seen[match[1].decode() if match and response.status == 200
                     else f"http-{response.status}"] += 1
        finally:
            conn.close()
        return seen


class NamedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to ``address`` but speaks TLS to ``server_name`` (like curl --connect-to)."""

    def __init__(self, address: str, server_name: str, context: ssl.SSLContext,
                 timeout: float) -> None:
        super().__init__(address, 443, timeout=timeout, context=context)
        self.server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=self.server_name)


def _route(namespace: str) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": ROUTE_NAME, "namespace": namespace},
            "spec": {"hosts": [BENCH_HOST], "gateways": ["istio-system/public-gateway"],
                     "http": [{"match": [{"uri": {"prefix": HELLO_PATH}}],
                               "route": [{"destination": {
                                   "host": f"{SAMPLE_SERVICE}.{namespace}.svc.cluster.local",
                                   "port": {"number": SAMPLE_PORT}}}]}]}}


def _ingress_ca(api: ClusterApi, directory: Path) -> Path:
    secret = api.get("/api/v1/namespaces/istio-system/secrets/tls-cert")
    ca = (secret.get("data") or {}).get("ca.crt")
    if not ca:
        raise CannotRun(f"{api.cluster}: secret istio-system/tls-cert has no ca.crt")
    path = directory / f"{api.cluster}-ingress-ca.pem"
    path.write_bytes(base64.b64decode(ca))
    return path


def local_versions(api: ClusterApi) -> set[str]:
    """The helloworld versions whose pods run in this cluster."""
    pods = api.get(f"/api/v1/namespaces/{SAMPLE_NAMESPACE}/pods",
                   labelSelector=f"app={SAMPLE_SERVICE}").get("items") or []
    return {str(p["metadata"].get("labels", {}).get("version", "")) for p in pods}


@contextmanager
def bench_route(apis: dict[str, ClusterApi], directory: Path) -> Iterator[IngressEndpoint]:
    """The route in every cluster; the first cluster's ingress, answering on it. Removed after."""
    path = f"/apis/networking.istio.io/v1/namespaces/{SAMPLE_NAMESPACE}/virtualservices"
    for api in apis.values():
        api.create(path, _route(SAMPLE_NAMESPACE))
    try:
        api = next(iter(apis.values()))
        address = gateway_address(api)
        if not address:
            raise CannotRun(f"{api.cluster}: the ingress gateway has no LoadBalancer address")
        endpoint = IngressEndpoint(address, _ingress_ca(api, directory))

        def answers() -> None:
            seen = endpoint.versions(4, DEFAULT_TIMEOUTS.api_request)
            assert not any(k.startswith("http-") for k in seen), f"answers {dict(seen)}"

        eventually(answers, timeout=DEFAULT_TIMEOUTS.config_propagation,
                   interval=DEFAULT_TIMEOUTS.poll_interval,
                   what=f"https://{BENCH_HOST}{HELLO_PATH} through {api.cluster}'s ingress")
        yield endpoint
    finally:
        for api in apis.values():
            api.delete(f"{path}/{ROUTE_NAME}")
