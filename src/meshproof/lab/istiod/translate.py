"""The config istiod pushes to one proxy: sidecar, east-west gateway or ingress gateway."""

from __future__ import annotations

import base64
import hashlib
import json

import yaml

from meshproof.lab.istiod.clusters import outbound_clusters, service_ports
from meshproof.lab.istiod.policy import authorization_policies_for, mtls_mode_for_port
from meshproof.lab.istiod.routes import gateway_virtual_hosts, sidecar_virtual_hosts
from meshproof.lab.istiod.view import MeshView, Obj, labels_of, name_of, namespace_of
from meshproof.lab.kube.kubelet.launch import APP_PORT_OFFSET
from meshproof.lab.mesh.config import (
    EastWest,
    GatewayServer,
    Identity,
    Inbound,
    InboundPort,
    Ingress,
    OutboundCluster,
    ProxyConfig,
    ProxyMode,
    StatsMatcher,
)

__all__ = ["APP_PORT_OFFSET", "config_version", "proxy_config_for", "proxy_mode"]

SPIFFE_PREFIX = "spiffe://"


def proxy_mode(pod: Obj) -> ProxyMode:
    istio = labels_of(pod).get("istio", "")
    if istio == "eastwestgateway":
        return "eastwest"
    if istio == "ingressgateway":
        return "ingress"
    return "sidecar"


def _workload(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet" and "-" in ref.get("name", ""):
            return str(ref["name"]).rsplit("-", 1)[0]
        if ref.get("kind") in ("StatefulSet", "DaemonSet", "Job"):
            return str(ref.get("name", ""))
    return name_of(pod)


def _identity(view: MeshView, pod: Obj) -> Identity:
    labels = labels_of(pod)
    cluster = view.local_cluster
    region, zone = cluster.locality((pod.get("spec") or {}).get("nodeName", ""))
    return Identity(
        cluster=cluster.name, network=cluster.network, namespace=namespace_of(pod),
        workload=_workload(pod),
        service_account=str((pod.get("spec") or {}).get("serviceAccountName") or "default"),
        pod_ip=str((pod.get("status") or {}).get("podIP", "")), pod_name=name_of(pod),
        app=labels.get("app", "unknown"), version=labels.get("version", "unknown"),
        canonical_service=labels.get("service.istio.io/canonical-name", ""),
        canonical_revision=labels.get("service.istio.io/canonical-revision", ""),
        trust_domain=view.mesh.trust_domain, region=region, zone=zone,
    )


def _stats_matcher(view: MeshView, pod: Obj) -> StatsMatcher:
    config = dict(view.mesh.default_config)
    override = ((pod.get("metadata") or {}).get("annotations") or {}).get("proxy.istio.io/config")
    if override:
        config.update(yaml.safe_load(override) or {})
    matcher = config.get("proxyStatsMatcher") or {}
    return StatsMatcher(
        inclusion_prefixes=list(matcher.get("inclusionPrefixes") or []),
        inclusion_suffixes=list(matcher.get("inclusionSuffixes") or []),
        inclusion_regexps=list(matcher.get("inclusionRegexps") or []),
    )


def _inbound(view: MeshView, pod: Obj) -> Inbound:
    ns, labels = namespace_of(pod), labels_of(pod)
    ports: dict[int, InboundPort] = {}
    for sp in service_ports(view):
        if sp.namespace != ns:
            continue
        for svc in view.local_cluster.services:
            selector = (svc.get("spec") or {}).get("selector")
            if name_of(svc) != sp.name or namespace_of(svc) != ns or not selector:
                continue
            if not all(labels.get(k) == v for k, v in selector.items()):
                continue
            target = sp.target
            if not isinstance(target, int):
                target = next((int(p["containerPort"])
                               for c in (pod.get("spec") or {}).get("containers") or []
                               for p in c.get("ports") or [] if p.get("name") == target), 0)
            if target and target not in ports:
                ports[target] = InboundPort(
                    port=target, app_port=target + APP_PORT_OFFSET,
                    mtls_mode=mtls_mode_for_port(view, ns, labels, target),
                    name=sp.port_name or "http", service=sp.host)
    return Inbound(ports=sorted(ports.values(), key=lambda p: p.port),
                   policies=authorization_policies_for(view, ns, labels))


def _ingress(view: MeshView, pod: Obj) -> tuple[Ingress, list[str]]:
    """Gateway servers selecting this pod, and the ``ns/name`` of those Gateways."""
    labels = labels_of(pod)
    servers: list[GatewayServer] = []
    refs: list[str] = []
    target_of = {}
    for svc in view.local_cluster.services:
        selector = (svc.get("spec") or {}).get("selector") or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            for p in (svc.get("spec") or {}).get("ports") or []:
                target_of[int(p["port"])] = int(p.get("targetPort", p["port"]))
    secrets = {(namespace_of(s), name_of(s)): s for s in view.local_cluster.secrets}
    for gw in view.gateways:
        selector = (gw.get("spec") or {}).get("selector") or {}
        if not selector or not all(labels.get(k) == v for k, v in selector.items()):
            continue
        refs.append(f"{namespace_of(gw)}/{name_of(gw)}")
        for server in (gw.get("spec") or {}).get("servers") or []:
            port = server.get("port") or {}
            number = int(port.get("number", 0))
            protocol = str(port.get("protocol", "HTTP")).upper()
            tls = server.get("tls") or {}
            cert = key = ""
            if protocol == "HTTPS" and tls.get("credentialName"):
                secret = secrets.get((namespace_of(pod), tls["credentialName"]))
                data = (secret or {}).get("data") or {}
                cert = base64.b64decode(data.get("tls.crt", "")).decode()
                key = base64.b64decode(data.get("tls.key", "")).decode()
                if not cert or not key:
                    # As istiod does: a server whose credential is not there yet is left
                    # out (and served once the secret appears), not pushed half-made.
                    continue
            servers.append(GatewayServer(
                port=target_of.get(number, number),
                protocol="HTTPS" if protocol == "HTTPS" else "HTTP",
                hosts=[str(h).split("/", 1)[-1] for h in server.get("hosts") or ["*"]],
                https_redirect=bool(tls.get("httpsRedirect", False)),
                tls_mode="SIMPLE" if protocol == "HTTPS" else "",
                cert_chain_pem=cert, key_pem=key,
            ))
    return Ingress(servers=servers), refs


def _with_trust_domain_aliases(clusters: list[OutboundCluster], aliases: list[str]) -> None:
    """Each SPIFFE id a client accepts, also under every trust domain alias.

    As istiod expands the service accounts of a service with
    ``meshConfig.trustDomainAliases`` (``spiffe.ExpandWithTrustDomains`` in
    istio/istio pilot/pkg/model/push_context.go, ``initServiceAccounts``).
    """
    if not aliases:
        return
    for cluster in clusters:
        expanded = set(cluster.subject_alt_names)
        for san in cluster.subject_alt_names:
            domain, sep, rest = san.removeprefix(SPIFFE_PREFIX).partition("/")
            if san.startswith(SPIFFE_PREFIX) and domain and sep:
                expanded.update(f"{SPIFFE_PREFIX}{alias}/{rest}" for alias in aliases)
        cluster.subject_alt_names = sorted(expanded)


def proxy_config_for(view: MeshView, pod: Obj) -> ProxyConfig:
    """The config for the proxy in ``pod`` of the local cluster (without a certificate)."""
    mode = proxy_mode(pod)
    identity = _identity(view, pod)
    config = ProxyConfig(mode=mode, identity=identity, stats_matcher=_stats_matcher(view, pod))
    if mode == "eastwest":
        config.clusters = outbound_clusters(view, identity.namespace, identity.network,
                                            local_only=True)
        config.east_west = EastWest()
    elif mode == "ingress":
        config.clusters = outbound_clusters(view, identity.namespace, identity.network)
        config.ingress, refs = _ingress(view, pod)
        config.virtual_hosts = [
            vh for server in config.ingress.servers
            for vh in gateway_virtual_hosts(view, set(refs), server.port)
        ]
    else:
        config.clusters = outbound_clusters(view, identity.namespace, identity.network)
        config.virtual_hosts = sidecar_virtual_hosts(view)
        config.inbound = _inbound(view, pod)
    _with_trust_domain_aliases(config.clusters, view.mesh.trust_domain_aliases)
    config.version = config_version(config)
    return config


def config_version(config: ProxyConfig) -> str:
    """A content hash: the same objects give the same version, so pushes are idempotent."""
    data = config.to_dict()
    data.pop("version", None)
    data.pop("certificate", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
