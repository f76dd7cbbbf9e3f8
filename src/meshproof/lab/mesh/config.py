"""The configuration a lab proxy runs on: what the lab's istiod pushes to each proxy.

Everything here is a plain dataclass that round-trips through JSON
(``ProxyConfig.to_json()`` / ``ProxyConfig.from_json()``), because istiod sends
it over HTTP. istiod has already resolved the Istio resources into it:
PeerAuthentication into one mode per inbound port, DestinationRules into
outbound clusters with their endpoints, connection pool and outlier settings,
VirtualServices into routes. Field defaults are Istio's defaults (FACTS.md
"DestinationRule defaults", "VirtualService").

Names follow Envoy's: outbound clusters are ``outbound|<port>|<subset>|<fqdn>``,
and a remote-network endpoint is ``<remote east-west gateway>:15443`` with the
SNI ``outbound_.<port>_.<subset>_.<fqdn>`` to send.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from meshproof.errors import ConfigError

__all__ = [
    "DEFAULT_RETRY_ON",
    "MAX_U32",
    "AppProbe",
    "AuthorizationPolicy",
    "AuthzRule",
    "Certificate",
    "ConnectionPool",
    "EastWest",
    "Endpoint",
    "Fault",
    "GatewayServer",
    "HeaderMatch",
    "HttpRoute",
    "Identity",
    "Inbound",
    "InboundPort",
    "Ingress",
    "MtlsMode",
    "OutboundCluster",
    "OutlierDetection",
    "ProxyConfig",
    "ProxyMode",
    "Retries",
    "RouteDestination",
    "RouteMatch",
    "StatsMatcher",
    "VirtualHost",
    "WanDelay",
    "cluster_name",
    "parse_kube_app_probers",
    "parse_sni",
    "sni_for",
]

MtlsMode = Literal["STRICT", "PERMISSIVE", "DISABLE"]
ProxyMode = Literal["sidecar", "eastwest", "ingress"]

MAX_U32 = 2**32 - 1
"""Istio's "unlimited" for connection-pool limits."""

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
"""Istio's default retry policy (FACTS.md); retriable status codes default to 503."""


def cluster_name(port: int, fqdn: str, subset: str = "") -> str:
    """Envoy's outbound cluster name, e.g. ``outbound|5000|v1|helloworld.sample.svc.cluster.local``."""
    return f"outbound|{port}|{subset}|{fqdn}"


def sni_for(port: int, fqdn: str, subset: str = "") -> str:
    """The SNI that AUTO_PASSTHROUGH routes on: ``outbound_.<port>_.<subset>_.<fqdn>``."""
    return f"outbound_.{port}_.{subset}_.{fqdn}"


def parse_sni(sni: str) -> tuple[int, str, str] | None:
    """``(port, subset, fqdn)`` from an ``outbound_.…`` SNI, or None for any other name."""
    parts = sni.split("_.", 3)
    if len(parts) != 4 or parts[0] != "outbound" or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2], parts[3]


@dataclass(slots=True)
class Identity:
    """Who the proxy is: the pod it sits in and the workload's labels."""

    cluster: str
    """The cluster's ``multiCluster.clusterName``, e.g. ``aws-eks``."""
    network: str
    namespace: str
    workload: str
    """The owning workload (Deployment name), e.g. ``helloworld-v1``."""
    service_account: str
    pod_ip: str
    pod_name: str = ""
    app: str = "unknown"
    version: str = "unknown"
    canonical_service: str = ""
    """``service.istio.io/canonical-name``; defaults to ``app``."""
    canonical_revision: str = ""
    """``service.istio.io/canonical-revision``; defaults to ``version``, then ``latest``."""
    trust_domain: str = "cluster.local"
    region: str = ""
    zone: str = ""

    @property
    def spiffe(self) -> str:
        """This workload's SPIFFE id."""
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def canonical_name(self) -> str:
        return self.canonical_service or self.app or self.workload

    @property
    def canonical_rev(self) -> str:
        if self.canonical_revision:
            return self.canonical_revision
        return self.version if self.version and self.version != "unknown" else "latest"


@dataclass(slots=True)
class Certificate:
    """The workload certificate as the SDS server would hand it to Envoy (PEM text)."""

    cert_chain_pem: str
    """Leaf first, then its issuers."""
    key_pem: str
    root_bundle_pem: str
    """Every trusted root, concatenated (a trust bundle may hold several)."""


@dataclass(slots=True)
class AuthzRule:
    """One rule: ``from.source`` and ``to.operation`` (an empty list matches anything)."""

    principals: list[str] = field(default_factory=list)
    """Without ``spiffe://``, as AuthorizationPolicy writes them; ``*`` allowed as prefix/suffix."""
    namespaces: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AuthorizationPolicy:
    name: str
    action: Literal["ALLOW", "DENY"] = "ALLOW"
    rules: list[AuthzRule] = field(default_factory=list)
    """An ALLOW policy with no rules allows nothing; one empty rule allows everything."""


@dataclass(slots=True)
class InboundPort:
    """One service target port the proxy owns on the pod IP.

    In the lab the proxy listens on ``pod_ip:port`` itself (there is no iptables
    to redirect it), and the app is started on the private ``app_port`` instead;
    so every connection to the workload's port, from the mesh or from outside it,
    passes the proxy and its PeerAuthentication mode.
    """

    port: int
    app_port: int
    mtls_mode: MtlsMode = "PERMISSIVE"
    name: str = "http"
    service: str = ""
    """FQDN of the service this port serves (the destination reporter's destination_service);
    empty: taken from the request's Host."""


@dataclass(slots=True)
class Inbound:
    ports: list[InboundPort] = field(default_factory=list)
    policies: list[AuthorizationPolicy] = field(default_factory=list)
    app_address: str = ""
    """Where the app listens (its ``app_port``s); empty means the pod IP."""


@dataclass(slots=True)
class Endpoint:
    """One host of an outbound cluster."""

    address: str
    port: int
    cluster: str = ""
    network: str = ""
    region: str = ""
    zone: str = ""
    weight: int = 1
    labels: dict[str, str] = field(default_factory=dict)
    """The pod's labels (``app``, ``version``, ``service.istio.io/canonical-*``)."""
    sni: str = ""
    """Non-empty for a remote network's east-west gateway (``address:15443``)."""
    workload: str = ""
    namespace: str = ""
    """Workload and namespace of the pod, for metric labels when the peer sends no metadata
    (a failed request); a successful one is labelled from the peer's own metadata."""
    health_status: Literal["HEALTHY", "UNHEALTHY"] = "HEALTHY"
    """The EDS ``LbEndpoint.health_status`` istiod sends: ``UNHEALTHY`` for a not-ready pod
    (Istio ≥ 1.31 sends those by default). Envoy lists such a host with
    ``/failed_eds_health`` and does not route to it."""


@dataclass(slots=True)
class ConnectionPool:
    max_connections: int = MAX_U32
    http1_max_pending_requests: int = MAX_U32
    http2_max_requests: int = MAX_U32
    max_requests_per_connection: int = 0
    connect_timeout: float = 10.0
    idle_timeout: float = 3600.0
    max_retries: int = MAX_U32
    """circuit_breakers max_retries; Istio sets it to "unlimited"."""


@dataclass(slots=True)
class OutlierDetection:
    consecutive_5xx_errors: int = 5
    """0 disables. A rule's ``consecutiveErrors`` is ignored by Istio; istiod never maps it here."""
    consecutive_gateway_errors: int = 0
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_percent: int = 10
    min_health_percent: int = 0


@dataclass(slots=True)
class OutboundCluster:
    """An Envoy cluster of the outbound side (one per service port and subset)."""

    service: str
    """The service's FQDN, e.g. ``helloworld.sample.svc.cluster.local``."""
    port: int
    subset: str = ""
    endpoints: list[Endpoint] = field(default_factory=list)
    connection_pool: ConnectionPool = field(default_factory=ConnectionPool)
    outlier_detection: OutlierDetection | None = None
    """Also switches locality-aware load balancing on (FACTS.md "Multi-cluster")."""
    locality_lb: bool = True
    """``loadBalancer.localityLbSetting.enabled``; locality applies only with outlier detection."""
    tls_mode: Literal["ISTIO_MUTUAL", "DISABLE"] = "ISTIO_MUTUAL"
    subject_alt_names: list[str] = field(default_factory=list)
    """SPIFFE ids the peer may present; empty accepts any certificate of the trust bundle."""

    @property
    def name(self) -> str:
        return cluster_name(self.port, self.service, self.subset)


@dataclass(slots=True)
class HeaderMatch:
    name: str
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None
    """RE2 in Istio; full match. Python's ``re`` covers the lab's uses."""


@dataclass(slots=True)
class RouteMatch:
    headers: list[HeaderMatch] = field(default_factory=list)
    uri_exact: str | None = None
    uri_prefix: str | None = None


@dataclass(slots=True)
class RouteDestination:
    host: str
    """FQDN of the destination service."""
    port: int
    subset: str = ""
    weight: int = 100


@dataclass(slots=True)
class Retries:
    attempts: int = 2
    """Retries after the first try; 0 disables."""
    per_try_timeout: float | None = None
    retry_on: str = DEFAULT_RETRY_ON
    retriable_status_codes: list[int] = field(default_factory=lambda: [503])


@dataclass(slots=True)
class Fault:
    """VirtualService fault injection; a missing percentage injects nothing (FACTS.md)."""

    delay: float | None = None
    """fixedDelay, seconds."""
    delay_percentage: float | None = None
    abort_status: int | None = None
    abort_percentage: float | None = None


@dataclass(slots=True)
class HttpRoute:
    destinations: list[RouteDestination]
    matches: list[RouteMatch] = field(default_factory=list)
    """Any one must match; empty matches everything."""
    name: str = ""
    timeout: float | None = None
    """None: no route timeout (Istio's default)."""
    retries: Retries = field(default_factory=Retries)
    fault: Fault | None = None


@dataclass(slots=True)
class VirtualHost:
    """The routes for one service port (sidecar) or one gateway host (ingress)."""

    domains: list[str]
    """Sidecar: the service FQDN first, then any other names it answers to (its ClusterIP,
    as Istio's route domains carry it). Gateway: the hosts (``api.example.com``, ``*.example.com``)."""
    port: int
    """The service port; 0 on a gateway matches every server port."""
    routes: list[HttpRoute] = field(default_factory=list)
    """Empty: a default route to ``outbound|<port>||<domains[0]>``."""


@dataclass(slots=True)
class WanDelay:
    """One-way delay added per direction by the east-west gateway, uniform in ms."""

    min_ms: float = 10.0
    max_ms: float = 20.0


@dataclass(slots=True)
class EastWest:
    """AUTO_PASSTHROUGH on ``port``: route by SNI to this cluster's endpoints."""

    port: int = 15443
    wan_delay: WanDelay = field(default_factory=WanDelay)


@dataclass(slots=True)
class GatewayServer:
    """One Gateway server (a listener of the ingress gateway)."""

    port: int
    """The port the gateway pod listens on (the Service's targetPort)."""
    protocol: Literal["HTTP", "HTTPS"] = "HTTP"
    hosts: list[str] = field(default_factory=lambda: ["*"])
    https_redirect: bool = False
    tls_mode: Literal["SIMPLE", ""] = ""
    cert_chain_pem: str = ""
    key_pem: str = ""


@dataclass(slots=True)
class Ingress:
    servers: list[GatewayServer] = field(default_factory=list)


@dataclass(slots=True)
class StatsMatcher:
    """proxyStatsMatcher: which Envoy stats beyond Istio's default few exist."""

    inclusion_prefixes: list[str] = field(default_factory=list)
    inclusion_suffixes: list[str] = field(default_factory=list)
    inclusion_regexps: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AppProbe:
    """A kubelet probe the injector rewrote to ``:15020/app-health/<container>/<kind>``."""

    port: int
    """The container port the probe named (a workload port: the proxy maps it to the app's)."""
    path: str = ""
    """httpGet path; empty for a tcpSocket probe."""
    scheme: str = "HTTP"
    timeout: float = 1.0


def parse_kube_app_probers(text: str) -> dict[str, AppProbe]:
    """Istio's ``ISTIO_KUBE_APP_PROBERS`` env value (JSON) → probes by ``/app-health/…`` path."""
    try:
        doc = json.loads(text or "{}")
    except ValueError as exc:
        raise ConfigError(f"ISTIO_KUBE_APP_PROBERS is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError("ISTIO_KUBE_APP_PROBERS is not a JSON object")
    out: dict[str, AppProbe] = {}
    for path, spec in doc.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"ISTIO_KUBE_APP_PROBERS[{path!r}] is not an object")
        timeout = float(spec.get("timeoutSeconds", 1))
        if isinstance(spec.get("httpGet"), dict):
            get = spec["httpGet"]
            out[path] = AppProbe(
                port=int(get.get("port", 80)),
                path=str(get.get("path", "/")),
                scheme=str(get.get("scheme", "HTTP")),
                timeout=timeout,
            )
        elif isinstance(spec.get("tcpSocket"), dict):
            out[path] = AppProbe(port=int(spec["tcpSocket"].get("port", 0)), timeout=timeout)
        else:
            raise ConfigError(f"ISTIO_KUBE_APP_PROBERS[{path!r}]: neither httpGet nor tcpSocket")
    return out


@dataclass(slots=True)
class ProxyConfig:
    """Everything one proxy needs; ``version`` changes with every push."""

    mode: ProxyMode
    identity: Identity
    version: str = ""
    certificate: Certificate | None = None
    """None keeps the proxy's current certificate (a push without a new one)."""
    inbound: Inbound = field(default_factory=Inbound)
    clusters: list[OutboundCluster] = field(default_factory=list)
    virtual_hosts: list[VirtualHost] = field(default_factory=list)
    east_west: EastWest = field(default_factory=EastWest)
    ingress: Ingress = field(default_factory=Ingress)
    stats_matcher: StatsMatcher = field(default_factory=StatsMatcher)
    app_probers: dict[str, AppProbe] = field(default_factory=dict)
    """Rewritten app probes served on 15020, keyed by ``/app-health/<container>/<kind>``."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProxyConfig:
        """Parse a pushed config; raises ``ConfigError`` naming the bad field."""
        return _decode(cls, data, "config")

    @classmethod
    def from_json(cls, text: str | bytes) -> ProxyConfig:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"proxy config is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError("proxy config is not a JSON object")
        return cls.from_dict(data)

    def cluster(self, name: str) -> OutboundCluster | None:
        return next((c for c in self.clusters if c.name == name), None)


T = TypeVar("T")


def _decode(tp: Any, value: Any, where: str) -> Any:
    """Build ``tp`` from JSON data, checking types as it goes."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"proxy config field {where}: expected an object, got {value!r}")
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"proxy config field {where}: unknown keys {', '.join(unknown)}")
        kwargs = {k: _decode(hints[k], v, f"{where}.{k}") for k, v in value.items()}
        try:
            return tp(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"proxy config field {where}: {exc}") from exc
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors) or f"proxy config field {where}: bad value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"proxy config field {where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"proxy config field {where}: expected an object, got {value!r}")
        _, item = typing.get_args(tp)
        return {str(k): _decode(item, v, f"{where}.{k}") for k, v in value.items()}
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"proxy config field {where}: {value!r} is not one of {allowed}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"proxy config field {where}: expected a number, got {value!r}")
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"proxy config field {where}: expected {tp.__name__}, got {value!r}")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"proxy config field {where}: unsupported type {tp!r}")
