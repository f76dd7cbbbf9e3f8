"""What consul-k8s catalog sync registers in Consul for a cluster's Services (pure logic).

Follows hashicorp/consul-k8s ``control-plane/catalog/to-consul/resource.go``
(``shouldSync``, ``generateRegistrations``, ``registerServiceInstance``,
``updateServiceMeta``), ``service_id.go`` and ``annotation.go``:

- a Service is synced unless its namespace is denied or not allowed, it is a
  ClusterIP Service while ``-sync-clusterip-services=false``, or its
  ``consul.hashicorp.com/service-sync`` annotation says otherwise (default
  ``-k8s-default-sync``);
- all instances go on node ``k8s-sync`` (``-consul-node-name``), address
  127.0.0.1, NodeMeta ``external-source: kubernetes``;
- service name ``<prefix><name>[-<namespace>]``, tag ``k8s`` (``-consul-k8s-tag``),
  Meta ``external-source``, ``external-k8s-ns``, ``port-<port name>`` per Service port;
- ports (consul-k8s ≥ 1.9, the multi-port change of PR #4778): every instance has
  ``Port: 0`` and a ``Ports`` list of ``{"Name", "Port", "Default"}``, one entry per port
  (``port<N>`` for an unnamed one), exactly one ``Default``: the port the
  ``consul.hashicorp.com/service-port`` annotation names (a number becomes an extra entry
  named ``default``, listed first), else the first. ClusterIP instances list the
  EndpointSlice's ports (the target ports); the others list the Service's ports (the node
  ports for NodePort);
- ClusterIP: one instance per EndpointSlice address (ID ``<name>-<sha1(name-addr)[:12]>``),
  Meta naming the pod, node and zone, and a ``Kubernetes Readiness Check`` that is passing
  exactly when the endpoint is ready;
- LoadBalancer: one instance per ``status.loadBalancer.ingress`` address;
  NodePort: one per endpoint, at its node's address;
  ``spec.externalIPs``, when set, replace all of these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SyncOptions", "desired_registrations", "service_id", "should_sync"]

Obj = dict[str, Any]

ANNOTATION_SYNC = "consul.hashicorp.com/service-sync"
ANNOTATION_NAME = "consul.hashicorp.com/service-name"
ANNOTATION_PORT = "consul.hashicorp.com/service-port"
ANNOTATION_TAGS = "consul.hashicorp.com/service-tags"
ANNOTATION_META_PREFIX = "consul.hashicorp.com/service-meta-"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
CHECK_NAME = "Kubernetes Readiness Check"
CHECK_TYPE = "kubernetes-readiness"


@dataclass
class SyncOptions:
    """The ``consul-k8s-control-plane sync-catalog`` flags that shape registrations."""

    default_sync: bool = True
    allow_namespaces: set[str] = field(default_factory=lambda: {"*"})
    deny_namespaces: set[str] = field(default_factory=set)
    sync_clusterip: bool = True
    add_namespace_suffix: bool = False
    service_prefix: str = ""
    k8s_tag: str = "k8s"
    node_name: str = "k8s-sync"
    node_port_sync: str = "ExternalFirst"


def service_id(name: str, addr: str) -> str:
    """consul-k8s ``serviceID``: the name and the first 12 hex digits of sha1("name-addr")."""
    return f"{name}-{hashlib.sha1(f'{name}-{addr}'.encode()).hexdigest()[:12]}"


def _parse_bool(text: str) -> bool | None:
    t = text.strip().lower()
    if t in ("1", "t", "true"):
        return True
    if t in ("0", "f", "false"):
        return False
    return None


def should_sync(svc: Obj, opts: SyncOptions) -> bool:
    meta = svc.get("metadata") or {}
    ns = str(meta.get("namespace", ""))
    if ns in opts.deny_namespaces:
        return False
    if "*" not in opts.allow_namespaces and ns not in opts.allow_namespaces:
        return False
    kind = (svc.get("spec") or {}).get("type", "ClusterIP")
    if kind == "ClusterIP" and not opts.sync_clusterip:
        return False
    raw = (meta.get("annotations") or {}).get(ANNOTATION_SYNC)
    parsed = _parse_bool(raw) if raw is not None else None
    return opts.default_sync if parsed is None else parsed


def _consul_name(svc: Obj, opts: SyncOptions) -> str:
    meta = svc["metadata"]
    override = (meta.get("annotations") or {}).get(ANNOTATION_NAME)
    if override:
        return str(override).strip()
    name = f"{opts.service_prefix}{meta['name']}"
    return f"{name}-{meta.get('namespace', '')}" if opts.add_namespace_suffix else name


def _port_name(name: Any, index: int) -> str:
    """consul-k8s ``getPortName``: an unnamed port is ``port<1-based index>``."""
    return str(name) if str(name or "").strip() else f"port{index}"


def _ports(ports: list[Obj], override_name: str, override_number: int,
           value: Callable[[Obj], int]) -> list[Obj]:
    """consul-k8s' ``ServicePorts`` for ``ports``: the default one first, exactly one flagged.

    As ``generateRegistrations`` and ``registerServiceInstance`` build them: a numeric
    ``service-port`` annotation adds ``{"Name": "default", "Default": true}`` in front; a
    named one moves that port to the front as the default; without either, the first port
    is the default.
    """
    out: list[Obj] = []
    default: Obj | None = None
    if override_number > 0:
        default = {"Name": "default", "Port": override_number, "Default": True}
    for index, p in enumerate(ports, start=1):
        entry = {"Name": _port_name(p.get("name"), index), "Port": value(p), "Default": False}
        if override_name and p.get("name") == override_name and override_number <= 0:
            default = dict(entry, Default=True)
        else:
            out.append(entry)
    if default is not None:
        out.insert(0, default)
    if out and not any(e["Default"] for e in out):
        out[0]["Default"] = True
    return out


def _base(svc: Obj, opts: SyncOptions) -> tuple[Obj, Obj, str, int]:
    """(node part, service part, override port name, override port number)."""
    meta = svc["metadata"]
    annotations = meta.get("annotations") or {}
    ports = (svc.get("spec") or {}).get("ports") or []
    service: Obj = {"Service": _consul_name(svc, opts), "Tags": [opts.k8s_tag],
                    "Meta": {"external-source": "kubernetes",
                             "external-k8s-ns": meta.get("namespace", "")}}
    override_name, override_number = "", 0
    node_port = svc.get("spec", {}).get("type") == "NodePort"
    wanted = annotations.get(ANNOTATION_PORT)
    if wanted is not None and str(wanted).isdigit():
        override_number = int(wanted)
    elif wanted is not None:
        override_name = str(wanted)

    def service_port(p: Obj) -> int:
        return int(p.get("nodePort") or 0) if node_port and p.get("nodePort") else int(
            p.get("port") or 0)

    service["Port"] = 0
    service["Ports"] = _ports(ports, override_name, override_number, service_port)
    for p in ports:
        service["Meta"][f"port-{p.get('name', '')}"] = str(p.get("port", ""))
    tags = annotations.get(ANNOTATION_TAGS)
    if tags:
        service["Tags"] += [t.strip() for t in str(tags).split(",") if t.strip()]
    for k, v in annotations.items():
        if k.startswith(ANNOTATION_META_PREFIX):
            service["Meta"][k[len(ANNOTATION_META_PREFIX):]] = str(v)
    node = {"SkipNodeUpdate": True, "Node": opts.node_name, "Address": "127.0.0.1",
            "NodeMeta": {"external-source": "kubernetes"}}
    return node, service, override_name, override_number


def _instance(node: Obj, service: Obj, addr: str, ports: list[Obj] | None = None,
              meta: Obj | None = None, check: Obj | None = None) -> Obj:
    sid = service_id(service["Service"], addr)
    reg = dict(node, Service=dict(service, ID=sid, Address=addr, Port=0,
                                  Ports=[dict(p) for p in (service["Ports"] if ports is None
                                                           else ports)],
                                  Meta=dict(meta or service["Meta"])))
    if check is not None:
        reg["Check"] = dict(check, ServiceID=sid)
    return reg


def _endpoint_meta(base: Obj, endpoint: Obj) -> Obj:
    meta = dict(base)
    ref = endpoint.get("targetRef") or {}
    if ref:
        meta["external-k8s-ref-name"] = str(ref.get("name", ""))
        meta["external-k8s-ref-kind"] = str(ref.get("kind", ""))
    if endpoint.get("nodeName"):
        meta["external-k8s-node-name"] = str(endpoint["nodeName"])
    if endpoint.get("zone"):
        meta["external-k8s-topology-zone"] = str(endpoint["zone"])
    return meta


def _node_address(node: Obj | None, sync_type: str) -> str:
    addrs = ((node or {}).get("status") or {}).get("addresses") or []
    want = "InternalIP" if sync_type == "InternalOnly" else "ExternalIP"
    for a in addrs:
        if a.get("type") == want:
            return str(a.get("address", ""))
    if sync_type == "ExternalFirst":
        for a in addrs:
            if a.get("type") == "InternalIP":
                return str(a.get("address", ""))
    return ""


def desired_registrations(services: list[Obj], slices: list[Obj], opts: SyncOptions,
                          nodes: dict[str, Obj] | None = None) -> list[Obj]:
    """Every ``/v1/catalog/register`` body catalog sync wants in Consul now."""
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        svc_name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc_name:
            by_service.setdefault((meta.get("namespace", ""), svc_name), []).append(s)
    out: list[Obj] = []
    for svc in sorted(services, key=lambda s: (s["metadata"].get("namespace", ""),
                                               s["metadata"]["name"])):
        if not should_sync(svc, opts):
            continue
        meta, spec = svc["metadata"], svc.get("spec") or {}
        node, base, override_name, override_number = _base(svc, opts)
        if spec.get("externalIPs"):
            out += [_instance(node, base, ip) for ip in spec["externalIPs"]]
            continue
        kind = spec.get("type", "ClusterIP")
        key = (meta.get("namespace", ""), meta["name"])
        if kind == "LoadBalancer":
            seen: list[str] = []
            for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                addr = ing.get("ip") or ing.get("hostname")
                if addr and addr not in seen:
                    seen.append(addr)
                    out.append(_instance(node, base, addr))
            continue
        if kind not in ("ClusterIP", "NodePort"):
            continue
        seen = []
        for s in sorted(by_service.get(key, []), key=lambda s: s["metadata"].get("name", "")):
            ep_ports = _ports(s.get("ports") or [], override_name, override_number,
                              lambda p: int(p.get("port") or 0))
            for ep in s.get("endpoints") or []:
                for addr in ep.get("addresses") or []:
                    if addr in seen:
                        continue
                    seen.append(addr)
                    ep_meta = _endpoint_meta(base["Meta"], ep)
                    if kind == "NodePort":
                        node_addr = _node_address((nodes or {}).get(ep.get("nodeName", "")),
                                                  opts.node_port_sync)
                        if node_addr:
                            reg = _instance(node, base, addr, meta=ep_meta)
                            reg["Service"]["Address"] = node_addr
                            out.append(reg)
                        continue
                    ready = bool((ep.get("conditions") or {}).get("ready"))
                    check = {"CheckID": f"{meta.get('namespace', '')}/"
                                        f"{service_id(base['Service'], addr)}",
                             "Name": CHECK_NAME, "Type": CHECK_TYPE,
                             "Status": "passing" if ready else "critical",
                             "Output": "Kubernetes health checks passing" if ready else
                             "Kubernetes health checks failing"}
                    out.append(_instance(node, base, addr, ep_ports, ep_meta, check))
    return out
