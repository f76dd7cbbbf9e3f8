"""Configuration analysis over live objects, in the spirit of ``istioctl analyze``.

Each finding has a severity (Error / Warning), a code, the object, a message
and the fix in one line. Errors are what breaks traffic or leaves the mesh
unsupported: a route to a host, subset or gateway that does not exist,
conflicting PeerAuthentications, proxies on a version istiod does not support.
Warnings are drift an upgrade should fix first: ``consecutiveErrors`` (ignored
by Istio since 2020), objects written as ``v1beta1`` / ``v1alpha3`` where ``v1``
exists, hosts served from several clusters whose DestinationRule has no
outlier detection (so locality failover never happens), proxies one minor
version behind istiod.

``analyze`` reads the objects through the Kubernetes API; ``analyze_objects``
is the same analysis over objects already read (a snapshot, or test fixtures).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.proxypod import proxy_container

__all__ = ["ERROR", "WARNING", "ClusterObjects", "Finding", "analyze", "analyze_objects",
           "read_objects"]

ERROR = "Error"
WARNING = "Warning"

Obj = dict[str, Any]

ROOT_NAMESPACE = "istio-system"
"""Istio's root namespace: a PeerAuthentication there applies to the whole mesh."""

# networking.istio.io/v1 and security.istio.io/v1 are served since Istio 1.22 (FACTS.md);
# older versions are still served, so a manifest written against them keeps applying
# until the day they are removed.
_V1_GROUPS = ("networking.istio.io", "security.istio.io")
_OLD_VERSIONS = ("v1alpha3", "v1beta1")

_PATHS = {
    "services": "/api/v1/services",
    "pods": "/api/v1/pods",
    "destinationrules": "/apis/networking.istio.io/v1/destinationrules",
    "virtualservices": "/apis/networking.istio.io/v1/virtualservices",
    "gateways": "/apis/networking.istio.io/v1/gateways",
    "serviceentries": "/apis/networking.istio.io/v1/serviceentries",
    "peerauthentications": "/apis/security.istio.io/v1/peerauthentications",
    "authorizationpolicies": "/apis/security.istio.io/v1/authorizationpolicies",
}

_VERSION = re.compile(r":v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in the live configuration."""

    level: str
    """``Error`` (fails CONFIG-VALID) or ``Warning`` (evidence only)."""
    code: str
    """A stable name for the kind of problem (``Deprecated``, ``ReferencedResourceNotFound``)."""
    cluster: str
    object: str
    """``Kind namespace/name`` (or ``namespace X`` for a namespace-wide problem)."""
    message: str
    fix: str = ""
    """What to change, in one line."""

    @property
    def severity(self) -> str:
        """The same as ``level``."""
        return self.level

    def to_dict(self) -> dict[str, str]:
        """Plain JSON data."""
        return asdict(self)

    def __str__(self) -> str:
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{self.level} [{self.code}] ({self.object} on {self.cluster}) {self.message}{fix}"


@dataclass(frozen=True, slots=True)
class ClusterObjects:
    """What the analysis reads from one cluster, by resource (plural name, as in ``_PATHS``)."""

    cluster: str
    objects: Mapping[str, list[Obj]] = field(default_factory=dict)

    def of(self, resource: str) -> list[Obj]:
        return list(self.objects.get(resource) or [])


def _items(api: ClusterApi, path: str) -> list[Obj]:
    try:
        return list(api.get(path).get("items") or [])
    except NotFoundError:
        # The CRD is not installed: there is nothing of that kind to analyse.
        return []


def read_objects(cluster: str, api: ClusterApi) -> ClusterObjects:
    """Every object the analysis needs from one cluster, through the Kubernetes API."""
    return ClusterObjects(cluster, {name: _items(api, path) for name, path in _PATHS.items()})


def analyze(apis: dict[str, ClusterApi], namespaces: list[str]) -> list[Finding]:
    """Findings for the Istio config of ``namespaces`` in every cluster."""
    return analyze_objects([read_objects(name, api) for name, api in apis.items()], namespaces)


def analyze_objects(clusters: list[ClusterObjects], namespaces: list[str]) -> list[Finding]:
    """The analysis of objects already read; ``namespaces`` are those under test."""
    services = Counter(
        f"{_meta(s)[1]}.{_meta(s)[0]}.svc.cluster.local"
        for c in clusters for s in c.of("services"))
    known_hosts = set(services) | {
        str(h) for c in clusters for se in c.of("serviceentries")
        for h in _spec(se).get("hosts") or []}
    findings: list[Finding] = []
    for c in clusters:
        findings += _deprecated_fields(c)
        findings += _old_api_versions(c)
        findings += _unresolved_routes(c, namespaces, known_hosts)
        findings += _failover_without_outlier_detection(c, namespaces, services)
        findings += _conflicting_peer_authentications(c)
        findings += _proxy_version_skew(c)
    findings += _control_plane_skew(clusters)
    return findings


def _meta(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _spec(obj: Obj) -> Obj:
    return dict(obj.get("spec") or {})


def _name(kind: str, obj: Obj) -> str:
    ns, name = _meta(obj)
    return f"{kind} {ns}/{name}"


def _fqdn(host: str, namespace: str) -> str:
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.svc.cluster.local"
    if len(parts) == 2:
        return f"{host}.svc.cluster.local"
    return host


def _traffic_policies(spec: Obj) -> Iterable[Obj]:
    """The rule's policy, its port-level settings and its subsets' policies."""
    policies = [spec.get("trafficPolicy") or {}]
    policies += [s.get("trafficPolicy") or {} for s in spec.get("subsets") or []]
    for policy in list(policies):
        policies += list(policy.get("portLevelSettings") or [])
    return policies


def _deprecated_fields(c: ClusterObjects) -> list[Finding]:
    found = []
    for rule in c.of("destinationrules"):
        for policy in _traffic_policies(_spec(rule)):
            od = policy.get("outlierDetection") or {}
            if "consecutiveErrors" in od:
                found.append(Finding(
                    WARNING, "Deprecated", c.cluster, _name("DestinationRule", rule),
                    "outlierDetection.consecutiveErrors is ignored by Istio (the default of "
                    "5 consecutive 5xx applies instead)",
                    f"replace consecutiveErrors: {od['consecutiveErrors']} with "
                    f"consecutive5xxErrors: {od['consecutiveErrors']}"))
                break
    return found


def _applied_versions(obj: Obj) -> set[str]:
    """The apiVersions the object was written with: managedFields and kubectl's annotation."""
    meta = obj.get("metadata") or {}
    versions = {str(m.get("apiVersion", "")) for m in meta.get("managedFields") or []}
    annotations = meta.get("annotations") or {}
    applied = annotations.get("kubectl.kubernetes.io/last-applied-configuration")
    if applied:
        match = re.search(r'"apiVersion"\s*:\s*"([^"]+)"', str(applied))
        if match:
            versions.add(match.group(1))
    return {v for v in versions if v}


def _old_api_versions(c: ClusterObjects) -> list[Finding]:
    found = []
    kinds = {"destinationrules": "DestinationRule", "virtualservices": "VirtualService",
             "gateways": "Gateway", "serviceentries": "ServiceEntry",
             "peerauthentications": "PeerAuthentication",
             "authorizationpolicies": "AuthorizationPolicy"}
    for resource, kind in kinds.items():
        for obj in c.of(resource):
            old = sorted(v for v in _applied_versions(obj)
                         if v.partition("/")[0] in _V1_GROUPS
                         and v.partition("/")[2] in _OLD_VERSIONS)
            if old:
                group = old[0].partition("/")[0]
                found.append(Finding(
                    WARNING, "DeprecatedApiVersion", c.cluster, _name(kind, obj),
                    f"written as {', '.join(old)}; {group}/v1 is served since Istio 1.22",
                    f"change the manifest to apiVersion: {group}/v1 and apply it again"))
    return found


def _unresolved_routes(c: ClusterObjects, namespaces: list[str],
                       known_hosts: set[str]) -> list[Finding]:
    subsets: dict[str, set[str]] = {}
    for rule in c.of("destinationrules"):
        spec = _spec(rule)
        host = _fqdn(str(spec.get("host", "")), _meta(rule)[0])
        names = {str(s.get("name")) for s in spec.get("subsets") or []}
        subsets.setdefault(host, set()).update(names)
    gateways = {f"{ns}/{name}" for ns, name in map(_meta, c.of("gateways"))}
    found = []
    for vs in c.of("virtualservices"):
        ns = _meta(vs)[0]
        if ns not in namespaces:
            continue
        what, spec = _name("VirtualService", vs), _spec(vs)
        for gateway in spec.get("gateways") or []:
            ref = str(gateway) if "/" in str(gateway) else f"{ns}/{gateway}"
            if gateway != "mesh" and ref not in gateways:
                found.append(Finding(
                    ERROR, "ReferencedResourceNotFound", c.cluster, what,
                    f"gateway {ref} does not exist",
                    f"create Gateway {ref} or remove it from spec.gateways"))
        for section in ("http", "tcp", "tls"):
            for entry in spec.get(section) or []:
                for route in entry.get("route") or []:
                    found += _unresolved_destination(c.cluster, what, ns, route, known_hosts,
                                                     subsets)
    return found


def _unresolved_destination(cluster: str, what: str, ns: str, route: Obj, known_hosts: set[str],
                            subsets: dict[str, set[str]]) -> list[Finding]:
    dest = route.get("destination") or {}
    host = _fqdn(str(dest.get("host", "")), ns)
    if "*" in host:
        return []
    if host not in known_hosts:
        return [Finding(ERROR, "ReferencedResourceNotFound", cluster, what,
                        f"host {host} is not a service of the mesh",
                        f"create the Service or a ServiceEntry for {host}, or fix the host")]
    subset = dest.get("subset")
    if subset and subset not in subsets.get(host, set()):
        return [Finding(ERROR, "ReferencedResourceNotFound", cluster, what,
                        f"subset {subset} of {host} is not defined by a DestinationRule",
                        f"add subset {subset} to the DestinationRule of {host}")]
    return []


def _failover_without_outlier_detection(c: ClusterObjects, namespaces: list[str],
                                        services: Counter[str]) -> list[Finding]:
    """Hosts served from several clusters (or with a locality failover setting) need
    outlierDetection: without it Istio never fails over (FACTS.md, multi-network)."""
    detected: set[str] = set()
    failover_rules: dict[str, Obj] = {}
    for rule in c.of("destinationrules"):
        spec = _spec(rule)
        host = _fqdn(str(spec.get("host", "")), _meta(rule)[0])
        policies = list(_traffic_policies(spec))
        if any(p.get("outlierDetection") for p in policies):
            detected.add(host)
        if any(((p.get("loadBalancer") or {}).get("localityLbSetting") or {}).get(key)
               for p in policies for key in ("failover", "failoverPriority")):
            failover_rules[host] = rule
    multi_cluster = {h for h, n in services.items() if n > 1
                     and h.split(".")[1] in namespaces}
    found = []
    for host in sorted((multi_cluster | set(failover_rules)) - detected):
        why = ("has a locality failover setting" if host in failover_rules
               else "is served from more than one cluster")
        found.append(Finding(
            WARNING, "FailoverWithoutOutlierDetection", c.cluster,
            _name("DestinationRule", failover_rules[host]) if host in failover_rules
            else f"host {host}",
            f"{host} {why} but no DestinationRule in this cluster sets outlierDetection, "
            "so locality failover never happens",
            f"add trafficPolicy.outlierDetection (e.g. consecutive5xxErrors: 5) to the "
            f"DestinationRule of {host}"))
    return found


def _conflicting_peer_authentications(c: ClusterObjects) -> list[Finding]:
    policies = c.of("peerauthentications")
    namespace_wide = Counter(_meta(pa)[0] for pa in policies if not _spec(pa).get("selector"))
    found = []
    for ns, count in sorted(namespace_wide.items()):
        if count > 1:
            scope = "mesh-wide" if ns == ROOT_NAMESPACE else "namespace-wide"
            found.append(Finding(
                ERROR, "ConflictingPeerAuthentication", c.cluster, f"namespace {ns}",
                f"{count} {scope} PeerAuthentications; only the oldest applies",
                f"keep one PeerAuthentication without a selector in {ns} and delete the others"))
    selected = Counter(
        (_meta(pa)[0], repr(sorted(((_spec(pa).get("selector") or {}).get("matchLabels")
                                    or {}).items())))
        for pa in policies if _spec(pa).get("selector"))
    for (ns, labels), count in sorted(selected.items()):
        if count > 1:
            found.append(Finding(
                ERROR, "ConflictingPeerAuthentication", c.cluster, f"namespace {ns}",
                f"{count} PeerAuthentications select the same workloads {labels}",
                f"merge the PeerAuthentications selecting {labels} in {ns} into one"))
    return found


def _image_version(image: str) -> tuple[int, int] | None:
    match = _VERSION.search(image.rpartition("/")[2])
    return (int(match.group(1)), int(match.group(2))) if match else None


def _istiod_version(c: ClusterObjects) -> tuple[int, int] | None:
    versions = sorted(
        v for pod in c.of("pods") if _meta(pod)[0] == ROOT_NAMESPACE
        for ct in (pod.get("spec") or {}).get("containers") or []
        if "/pilot:" in str(ct.get("image", ""))
        for v in [_image_version(str(ct["image"]))] if v)
    return versions[-1] if versions else None


def _proxy_version_skew(c: ClusterObjects) -> list[Finding]:
    """Istio's skew policy: the control plane may be one minor version ahead of the data
    plane; the data plane may not be ahead (istio.io/latest/docs/releases/supported-releases/,
    "Control plane/data plane skew")."""
    istiod = _istiod_version(c)
    if istiod is None:
        return []
    proxies: Counter[tuple[int, int]] = Counter()
    for pod in c.of("pods"):
        spec = proxy_container(pod)
        version = _image_version(str(spec.get("image", ""))) if spec else None
        if version:
            proxies[version] += 1
    found = []
    for version, count in sorted(proxies.items()):
        behind = (istiod[0] - version[0]) * 100 + istiod[1] - version[1]
        if behind == 0:
            continue
        proxy, cp = ".".join(map(str, version)), ".".join(map(str, istiod))
        if behind == 1:
            level, why = WARNING, "one minor version behind istiod (supported)"
        elif behind < 0:
            level, why = ERROR, "ahead of istiod (unsupported: the data plane may not lead)"
        else:
            level, why = ERROR, f"{behind} minor versions behind istiod (unsupported)"
        found.append(Finding(
            level, "ProxyVersionSkew", c.cluster, f"{count} proxies on {proxy}",
            f"{count} sidecars/gateways run {proxy}, {why} {cp}",
            f"restart the workloads (kubectl rollout restart) so they get the {cp} proxy"))
    return found


def _control_plane_skew(clusters: list[ClusterObjects]) -> list[Finding]:
    versions = {c.cluster: v for c in clusters if (v := _istiod_version(c)) is not None}
    if len(set(versions.values())) < 2:
        return []
    newest = max(versions.values())
    found = []
    for cluster, version in versions.items():
        behind = (newest[0] - version[0]) * 100 + newest[1] - version[1]
        if behind == 0:
            continue
        new, old = ".".join(map(str, newest)), ".".join(map(str, version))
        found.append(Finding(
            WARNING, "ControlPlaneVersionSkew", cluster, f"istiod {old}",
            f"istiod runs {old} while another cluster of the mesh runs {new}",
            f"upgrade istiod in {cluster} to {new}"))
    return found
