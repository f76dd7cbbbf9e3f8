"""Consul's HTTP API through the Kubernetes API server's ``services/proxy``, with ``py-consul``.

``py-consul`` builds URLs as ``<base_uri>/v1/...``; pointing ``base_uri`` at the
service proxy path and adding the API server's credentials lets the real client
reach an in-cluster Consul on every target without a port-forward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import consul
import consul.std

from meshproof.clients.kube import ClusterApi

__all__ = ["consul_via_apiserver", "instance_port"]


def instance_port(service: Mapping[str, Any], prefix: str = "") -> int:
    """The port a Consul service instance is reached on.

    consul-k8s ≥ 1.9 catalog sync registers ``Port: 0`` and a ``Ports`` list whose
    ``Default`` entry is the service's port (hashicorp/consul-k8s
    ``control-plane/catalog/to-consul/resource.go``, PR #4778); older syncs and most other
    registrations set only ``Port``. ``prefix`` is ``"Service"`` for
    ``/v1/catalog/service/<name>`` entries (``ServicePort``, ``ServicePorts``).
    """
    ports = [p for p in service.get(f"{prefix}Ports") or [] if isinstance(p, Mapping)]
    default = next((p for p in ports if p.get("Default")), None)
    if default is not None:
        return int(default.get("Port") or 0)
    port = int(service.get(f"{prefix}Port") or 0)
    if port or not ports:
        return port
    return int(ports[0].get("Port") or 0)


class _ProxiedHTTPClient(consul.std.HTTPClient):
    def __init__(self, base_uri: str, headers: dict[str, str], verify: bool | str, cert: Any,
                 timeout: float) -> None:
        super().__init__(host="127.0.0.1", port=8500, scheme="http", verify=verify, cert=cert,
                         connections_timeout=timeout)
        self.base_uri = base_uri.rstrip("/")
        self.session.headers.update(headers)


class _ProxiedConsul(consul.Consul):
    def __init__(self, http: _ProxiedHTTPClient) -> None:
        self._proxied_http = http
        super().__init__()

    def http_connect(self, *args: Any, **kwargs: Any) -> _ProxiedHTTPClient:
        return self._proxied_http


def consul_via_apiserver(
    api: ClusterApi, *, namespace: str, service: str, port: int | str
) -> consul.Consul:
    """A ``consul.Consul`` whose requests go to ``service:port`` in ``namespace`` of ``api``."""
    configuration = api.api.configuration
    headers: dict[str, str] = {}
    token = configuration.api_key.get("authorization") or configuration.api_key.get(
        "BearerToken"
    )
    if token:
        prefix = configuration.api_key_prefix.get("authorization", "")
        headers["Authorization"] = f"{prefix} {token}".strip() if prefix else token
    verify: bool | str = bool(configuration.verify_ssl)
    if configuration.verify_ssl and configuration.ssl_ca_cert:
        verify = str(configuration.ssl_ca_cert)
    cert: Any = None
    if configuration.cert_file and configuration.key_file:
        cert = (configuration.cert_file, configuration.key_file)
    base = f"{api.host.rstrip('/')}/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy"
    return _ProxiedConsul(_ProxiedHTTPClient(base, headers, verify, cert, api.timeout))
