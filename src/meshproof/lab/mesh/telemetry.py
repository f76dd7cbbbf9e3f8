"""Who is on the other end: peer metadata exchange, metric labels and the access log.

Istio's proxies tell each other who they are in the ``x-envoy-peer-metadata``
request/response headers (with ``x-envoy-peer-metadata-id``), so that both the
source and the destination reporter can label a request with both workloads,
even across the east-west gateway. The real header is a base64 protobuf
Struct; the lab sends base64 JSON with the same keys (``NAME``, ``NAMESPACE``,
``CLUSTER_ID``, ``WORKLOAD_NAME``, ``SERVICE_ACCOUNT``, ``LABELS``, …). Both
headers are removed before a message reaches an app.
"""

from __future__ import annotations

import base64
import datetime
import json
from dataclasses import dataclass

from meshproof.lab.mesh.config import Identity
from meshproof.lab.mesh.http1 import Headers
from meshproof.lab.mesh.metrics import TrafficLabels

__all__ = [
    "PEER_METADATA",
    "PEER_METADATA_ID",
    "PeerInfo",
    "access_log_line",
    "decode_peer_metadata",
    "encode_peer_metadata",
    "service_parts",
    "strip_peer_metadata",
    "traffic_labels",
]

PEER_METADATA = "x-envoy-peer-metadata"
PEER_METADATA_ID = "x-envoy-peer-metadata-id"


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One side of a request, as metric labels see it."""

    workload: str = "unknown"
    namespace: str = "unknown"
    principal: str = "unknown"
    app: str = "unknown"
    version: str = "unknown"
    canonical_service: str = "unknown"
    canonical_revision: str = "latest"
    cluster: str = "unknown"

    @classmethod
    def of(cls, identity: Identity, *, principal: str | None = None) -> PeerInfo:
        return cls(
            workload=identity.workload,
            namespace=identity.namespace,
            principal=principal if principal is not None else identity.spiffe,
            app=identity.app or "unknown",
            version=identity.version or "unknown",
            canonical_service=identity.canonical_name,
            canonical_revision=identity.canonical_rev,
            cluster=identity.cluster,
        )

    def with_principal(self, principal: str) -> PeerInfo:
        return PeerInfo(
            self.workload,
            self.namespace,
            principal,
            self.app,
            self.version,
            self.canonical_service,
            self.canonical_revision,
            self.cluster,
        )


def encode_peer_metadata(identity: Identity) -> tuple[str, str]:
    """Values of ``x-envoy-peer-metadata`` and ``x-envoy-peer-metadata-id`` for this proxy."""
    doc = {
        "NAME": identity.pod_name or identity.workload,
        "NAMESPACE": identity.namespace,
        "CLUSTER_ID": identity.cluster,
        "NETWORK": identity.network,
        "WORKLOAD_NAME": identity.workload,
        "SERVICE_ACCOUNT": identity.service_account,
        "LABELS": {
            "app": identity.app,
            "version": identity.version,
            "service.istio.io/canonical-name": identity.canonical_name,
            "service.istio.io/canonical-revision": identity.canonical_rev,
        },
        "TRUST_DOMAIN": identity.trust_domain,
    }
    value = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()
    node_id = f"sidecar~{identity.pod_ip}~{identity.pod_name or identity.workload}.{identity.namespace}~{identity.namespace}.svc.cluster.local"
    return value, node_id


def decode_peer_metadata(headers: Headers, *, principal: str) -> PeerInfo | None:
    """The peer described by a message's metadata header, or None if absent or unreadable."""
    raw = headers.get(PEER_METADATA)
    if not raw:
        return None
    try:
        doc = json.loads(base64.b64decode(raw))
        labels = doc.get("LABELS") or {}
        return PeerInfo(
            workload=str(doc.get("WORKLOAD_NAME") or "unknown"),
            namespace=str(doc.get("NAMESPACE") or "unknown"),
            principal=principal,
            app=str(labels.get("app") or "unknown"),
            version=str(labels.get("version") or "unknown"),
            canonical_service=str(labels.get("service.istio.io/canonical-name") or "unknown"),
            canonical_revision=str(labels.get("service.istio.io/canonical-revision") or "latest"),
            cluster=str(doc.get("CLUSTER_ID") or "unknown"),
        )
    except (ValueError, TypeError, AttributeError):
        return None


def strip_peer_metadata(headers: Headers) -> None:
    headers.remove(PEER_METADATA)
    headers.remove(PEER_METADATA_ID)


def service_parts(fqdn: str) -> tuple[str, str]:
    """(service name, namespace) of ``name.ns.svc.cluster.local``; ("fqdn", "unknown") otherwise."""
    parts = fqdn.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[0], parts[1]
    return fqdn, "unknown"


def traffic_labels(
    *,
    reporter: str,
    source: PeerInfo,
    destination: PeerInfo,
    destination_service: str,
    response_code: int | None,
    response_flags: str,
    security_policy: str,
    protocol: str = "http",
) -> TrafficLabels:
    name, ns = (
        service_parts(destination_service)
        if destination_service != "unknown"
        else ("unknown", "unknown")
    )
    return TrafficLabels(
        reporter=reporter,
        source_workload=source.workload,
        source_workload_namespace=source.namespace,
        source_principal=source.principal,
        source_app=source.app,
        source_version=source.version,
        source_canonical_service=source.canonical_service,
        source_canonical_revision=source.canonical_revision,
        source_cluster=source.cluster,
        destination_workload=destination.workload,
        destination_workload_namespace=destination.namespace,
        destination_principal=destination.principal,
        destination_app=destination.app,
        destination_version=destination.version,
        destination_service=destination_service,
        destination_service_name=name,
        destination_service_namespace=ns,
        destination_canonical_service=destination.canonical_service,
        destination_canonical_revision=destination.canonical_revision,
        destination_cluster=destination.cluster,
        request_protocol=protocol,
        response_flags=response_flags or "-",
        connection_security_policy=security_policy,
        response_code=str(response_code if response_code is not None else 0),
        grpc_response_status="",
    )


def _q(value: str | None) -> str:
    return f'"{value}"' if value else '"-"'


def access_log_line(
    *,
    method: str = "-",
    path: str = "-",
    protocol: str = "-",
    code: int = 0,
    flags: str = "-",
    details: str = "-",
    received: int = 0,
    sent: int = 0,
    duration_ms: int = 0,
    upstream_ms: str = "-",
    user_agent: str | None = None,
    request_id: str | None = None,
    authority: str | None = None,
    upstream_host: str | None = None,
    upstream_cluster: str = "-",
    downstream_local: str = "-",
    downstream_remote: str = "-",
    sni: str = "-",
) -> str:
    """One line in Istio's default access-log text format."""
    ts = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return (
        f'[{ts}] "{method} {path} {protocol}" {code} {flags or "-"} {details} - "-" '
        f'{received} {sent} {duration_ms} {upstream_ms} "-" {_q(user_agent)} {_q(request_id)} '
        f"{_q(authority)} {_q(upstream_host)} {upstream_cluster} - {downstream_local} "
        f"{downstream_remote} {sni or '-'} -"
    )
