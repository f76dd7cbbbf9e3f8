"""The manifests under clusters/ describe the mesh the runbook promises: a pinned, consistent,
two-network install whose workloads, routes and policies fit together."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster_manifests import (
    CLUSTERS_DIR,
    Doc,
    documents,
    manifest_files,
    objects,
    versions,
)

pytestmark = pytest.mark.static

CLUSTERS = ("aws-eks", "gcp-gke")
NETWORKS = {"aws-eks": "network1", "gcp-gke": "network2"}
STATS_REGEXPS = {
    ".*outlier_detection.*",
    ".*upstream_rq_.*",
    ".*upstream_cx_.*",
    ".*circuit_breakers.*",
    ".*ssl.*",
}


def _file(rel: str) -> list[Doc]:
    return list(documents(CLUSTERS_DIR / rel))


def _only(rel: str, kind: str) -> dict[str, Any]:
    docs = [d for d in _file(rel) if d.kind == kind]
    assert len(docs) == 1, f"{rel}: expected one {kind}, found {len(docs)}"
    return docs[0].body  # type: ignore[no-any-return]


def _find(kind: str, name: str, namespace: str | None = None) -> Doc:
    hits = [
        d
        for d in objects()
        if d.kind == kind and d.name == name and (namespace is None or d.namespace == namespace)
    ]
    assert len(hits) == 1, f"expected one {kind}/{name} under clusters/, found {len(hits)}"
    return hits[0]


def _pod_specs(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = body.get("spec") or {}
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    if template:
        yield template.get("spec", {})
    elif body.get("kind") == "Pod":
        yield spec


def _images() -> Iterator[tuple[str, str]]:
    """(where, image) for every image a manifest or install file names."""
    for doc in objects():
        for pod in _pod_specs(doc.body):
            for c in [*pod.get("containers", []), *pod.get("initContainers", [])]:
                yield doc.where, c["image"]
        if doc.kind == "IstioOperator":
            spec = doc.body["spec"]
            yield doc.where, f"{spec['hub']}/pilot:{spec['tag']}"
        if doc.kind == "Cluster":
            for node in doc.body["nodes"]:
                yield doc.where, node["image"]
    values = yaml.safe_load((CLUSTERS_DIR / "consul/values.yaml").read_text())
    yield "consul/values.yaml", values["global"]["image"]
    yield "consul/values.yaml", values["global"]["imageK8S"]


def _cluster_workloads(cluster: str) -> list[Doc]:
    """What `kubectl apply -R` puts in one cluster from mesh/ and workloads/ (common + its own)."""
    roots = ["mesh", "workloads/common", f"workloads/{cluster}"]
    return [
        d
        for p in manifest_files()
        if any(CLUSTERS_DIR / r in p.parents for r in roots)
        for d in documents(p)
    ]


# --- pinning -----------------------------------------------------------------------------


def test_every_image_is_pinned_by_tag() -> None:
    bad = []
    for where, image in _images():
        name, _, tag = image.rpartition(":")
        if not name or "/" in tag or tag in ("", "latest"):
            bad.append(f"{where}: {image}")
    assert not bad, f"images without a pinned tag: {bad}"


def test_images_match_pinned_versions() -> None:
    v = versions()
    images = {image for _, image in _images()}
    assert f"{v['ISTIO_HUB']}/pilot:{v['ISTIO_VERSION']}" in images
    assert v["KIND_NODE_IMAGE"] in images
    assert v["PROMETHEUS_IMAGE"] in images
    assert f"hashicorp/consul:{v['CONSUL_VERSION']}" in images
    assert f"hashicorp/consul-k8s-control-plane:{v['CONSUL_CHART_VERSION']}" in images
    stray = sorted(
        i
        for i in images
        if i.startswith(("kindest/", "docker.io/istio/pilot", "prom/"))
        and not (
            i in (v["KIND_NODE_IMAGE"], v["PROMETHEUS_IMAGE"])
            or i == f"{v['ISTIO_HUB']}/pilot:{v['ISTIO_VERSION']}"
        )
    )
    assert not stray, f"images not at the versions in clusters/versions.env: {stray}"
    for key in ("METALLB_MANIFEST_URL", "CERT_MANAGER_MANIFEST_URL"):
        version_key = key.replace("_MANIFEST_URL", "_VERSION")
        assert f"/{v[version_key]}/" in v[key], f"{key} is not at {version_key}={v[version_key]}"


def test_an_unpinned_image_is_caught() -> None:
    for image in ("curlimages/curl", "curlimages/curl:latest", "localhost:5000/curl"):
        name, _, tag = image.rpartition(":")
        assert not name or "/" in tag or tag in ("", "latest")


# --- kind --------------------------------------------------------------------------------


def test_kind_clusters_have_distinct_ranges_and_ports() -> None:
    nets: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    host_ports: list[int] = []
    for cluster in CLUSTERS:
        cfg = _only(f"kind/{cluster}.yaml", "Cluster")
        assert cfg["name"] == cluster
        for key in ("podSubnet", "serviceSubnet"):
            nets.append((f"{cluster}.{key}", ipaddress.ip_network(cfg["networking"][key])))
        for node in cfg["nodes"]:
            host_ports += [m["hostPort"] for m in node.get("extraPortMappings", [])]
    for i, (a_name, a) in enumerate(nets):
        for b_name, b in nets[i + 1 :]:
            assert not a.overlaps(b), f"{a_name} {a} overlaps {b_name} {b}"
    assert len(host_ports) == len(set(host_ports)), f"host ports reused: {host_ports}"


def test_kind_ranges_are_the_documented_ones() -> None:
    expected = {
        "aws-eks": ("10.10.0.0/16", "10.255.10.0/24"),
        "gcp-gke": ("10.20.0.0/16", "10.255.20.0/24"),
    }
    for cluster, (pods, services) in expected.items():
        net = _only(f"kind/{cluster}.yaml", "Cluster")["networking"]
        assert (net["podSubnet"], net["serviceSubnet"]) == (pods, services)


# --- Istio install -----------------------------------------------------------------------


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_istio_install_values(cluster: str) -> None:
    iop = _only(f"istio/{cluster}.yaml", "IstioOperator")["spec"]
    g = iop["values"]["global"]
    assert g["multiCluster"]["clusterName"] == cluster
    assert g["network"] == NETWORKS[cluster]
    assert g["meshID"] == "mesh1"
    assert iop["hub"] == "docker.io/istio"
    assert iop["tag"] == versions()["ISTIO_VERSION"]
    assert iop["meshConfig"]["trustDomain"] == "cluster.local"
    regexps = set(iop["meshConfig"]["defaultConfig"]["proxyStatsMatcher"]["inclusionRegexps"])
    assert regexps >= STATS_REGEXPS
    requests = iop["components"]["pilot"]["k8s"]["resources"]["requests"]
    assert requests["cpu"].endswith("m") and int(requests["cpu"][:-1]) < 500
    gateways = {g["name"]: g for g in iop["components"]["ingressGateways"]}
    assert gateways["istio-ingressgateway"]["label"]["istio"] == "ingressgateway"


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_istio_system_is_labelled_with_the_network(cluster: str) -> None:
    ns = _only(f"istio/istio-system-{cluster}.yaml", "Namespace")
    assert ns["metadata"]["name"] == "istio-system"
    assert ns["metadata"]["labels"]["topology.istio.io/network"] == NETWORKS[cluster]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_eastwest_gateway_values(cluster: str) -> None:
    iop = _only(f"istio/eastwest-gateway-{cluster}.yaml", "IstioOperator")["spec"]
    assert iop["profile"] == "empty"
    (gw,) = iop["components"]["ingressGateways"]
    assert gw["name"] == "istio-eastwestgateway" and gw["enabled"] is True
    assert gw["label"]["istio"] == "eastwestgateway"
    assert gw["label"]["topology.istio.io/network"] == NETWORKS[cluster]
    env = {e["name"]: e["value"] for e in gw["k8s"]["env"]}
    assert env == {
        "ISTIO_META_ROUTER_MODE": "sni-dnat",
        "ISTIO_META_REQUESTED_NETWORK_VIEW": NETWORKS[cluster],
    }
    ports = {p["port"]: p["targetPort"] for p in gw["k8s"]["service"]["ports"]}
    assert ports == {15021: 15021, 15443: 15443, 15012: 15012, 15017: 15017}
    g = iop["values"]["global"]
    assert (g["network"], g["multiCluster"]["clusterName"]) == (NETWORKS[cluster], cluster)


def test_cross_network_gateway() -> None:
    gw = _only("istio/cross-network-gateway.yaml", "Gateway")
    assert gw["metadata"] == {"name": "cross-network-gateway", "namespace": "istio-system"}
    assert gw["spec"]["selector"] == {"istio": "eastwestgateway"}
    (server,) = gw["spec"]["servers"]
    assert server["port"]["number"] == 15443 and server["port"]["protocol"] == "TLS"
    assert server["tls"] == {"mode": "AUTO_PASSTHROUGH"}
    assert server["hosts"] == ["*.local"]


# --- mesh policy -------------------------------------------------------------------------


def test_namespaces_under_test_are_injected() -> None:
    for name in ("sample", "production"):
        ns = _find("Namespace", name).body
        assert ns["metadata"]["labels"]["istio-injection"] == "enabled"


def test_production_is_strict() -> None:
    pa = _find("PeerAuthentication", "default", "production").body
    assert pa["spec"] == {"mtls": {"mode": "STRICT"}}
    assert not [
        d.where
        for d in objects()
        if d.kind == "PeerAuthentication" and d.body["spec"].get("mtls", {}).get("mode") != "STRICT"
    ], "a PeerAuthentication weaker than STRICT would undo the production promise"


# --- workloads ---------------------------------------------------------------------------


def _deployments(cluster: str) -> list[Doc]:
    return [d for d in _cluster_workloads(cluster) if d.kind == "Deployment"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_helloworld_versions_are_split_across_clusters() -> None:
    svc = _find("Service", "helloworld", "sample").body
    assert [p["port"] for p in svc["spec"]["ports"]] == [5000]
    for cluster, version, absent in (("aws-eks", "v1", "v2"), ("gcp-gke", "v2", "v1")):
        names = {d.name for d in _deployments(cluster) if d.namespace == "sample"}
        assert f"helloworld-{version}" in names and f"helloworld-{absent}" not in names


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_curl_clients_in_both_namespaces(cluster: str) -> None:
    for ns in ("sample", "production"):
        (curl,) = [d for d in _deployments(cluster) if d.name == "curl" and d.namespace == ns]
        (container,) = curl.body["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith("curlimages/curl:")
        assert container["command"][-1] == "infinity"


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_service_selects_a_deployment(cluster: str) -> None:
    docs = _cluster_workloads(cluster)
    pods = [
        (d.namespace, d.body["spec"]["template"]["metadata"]["labels"])
        for d in docs
        if d.kind == "Deployment"
    ]
    for svc in (d for d in docs if d.kind == "Service"):
        if svc.name == "helloworld":
            continue  # one version per cluster; checked above
        selector = svc.body["spec"]["selector"]
        assert any(ns == svc.namespace and _selects(selector, labels) for ns, labels in pods), (
            f"{svc.where}: Service {svc.namespace}/{svc.name} selects no pod in {cluster}"
        )


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_deployment_selectors_match_their_templates(cluster: str) -> None:
    for d in _deployments(cluster):
        spec = d.body["spec"]
        assert _selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]), (
            d.where
        )


def test_catalog_routing_is_the_runbook_routing() -> None:
    vs = _find("VirtualService", "catalog", "production").body["spec"]
    canary, split = vs["http"]
    assert canary["match"] == [{"headers": {"env": {"exact": "canary"}}}]
    assert [(r["destination"]["subset"], r["weight"]) for r in canary["route"]] == [("v2", 100)]
    assert [(r["destination"]["subset"], r["weight"]) for r in split["route"]] == [
        ("v1", 90),
        ("v2", 10),
    ]


def test_route_weights_sum_to_100_and_subsets_exist() -> None:
    rules = {
        (d.namespace, d.body["spec"]["host"]): d.body
        for d in objects()
        if d.kind == "DestinationRule"
    }
    for doc in (d for d in objects() if d.kind == "VirtualService"):
        for route in doc.body["spec"].get("http", []):
            weights = [r.get("weight") for r in route["route"]]
            if len(weights) > 1 or weights != [None]:
                assert sum(w or 0 for w in weights) == 100, f"{doc.where}: weights {weights}"
            for r in route["route"]:
                subset = r["destination"].get("subset")
                if subset:
                    dr = rules[(doc.namespace, r["destination"]["host"])]
                    assert subset in {s["name"] for s in dr["spec"]["subsets"]}, doc.where


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_subset_has_pods(cluster: str) -> None:
    docs = _cluster_workloads(cluster)
    for dr in (d for d in docs if d.kind == "DestinationRule"):
        svc = next(
            d
            for d in docs
            if d.kind == "Service"
            and d.name == dr.body["spec"]["host"]
            and d.namespace == dr.namespace
        )
        for subset in dr.body["spec"].get("subsets", []):
            want = {**svc.body["spec"]["selector"], **subset["labels"]}
            assert any(
                _selects(want, d.body["spec"]["template"]["metadata"]["labels"])
                for d in docs
                if d.kind == "Deployment" and d.namespace == dr.namespace
            ), f"{dr.where}: subset {subset['name']} has no pods in {cluster}"


def test_destination_rules_detect_outliers_by_5xx() -> None:
    for doc in (d for d in objects() if d.kind == "DestinationRule"):
        od = doc.body["spec"]["trafficPolicy"]["outlierDetection"]
        assert od["consecutive5xxErrors"] == 5, doc.where


def test_public_ingress_is_the_runbook_ingress() -> None:
    gw = _find("Gateway", "public-gateway", "istio-system").body["spec"]
    assert gw["selector"] == {"istio": "ingressgateway"}
    http, https = gw["servers"]
    assert (http["port"]["number"], http["tls"]) == (80, {"httpsRedirect": True})
    assert https["port"]["number"] == 443
    assert https["tls"] == {"mode": "SIMPLE", "credentialName": "tls-cert"}
    assert http["hosts"] == https["hosts"] == ["*.example.com"]
    vs = _find("VirtualService", "public-routes", "production").body["spec"]
    assert vs["hosts"] == ["api.example.com"]
    assert vs["gateways"] == ["istio-system/public-gateway"]
    (route,) = vs["http"]
    assert route["match"] == [{"uri": {"prefix": "/api/v1"}}]
    assert route["route"][0]["destination"] == {"host": "api-service", "port": {"number": 8080}}
    svc = _find("Service", "api-service", "production").body
    assert [p["port"] for p in svc["spec"]["ports"]] == [8080]


def test_ingress_certificate_covers_the_gateway_hosts() -> None:
    cert = _find("Certificate", "tls-cert", "istio-system").body["spec"]
    assert cert["secretName"] == "tls-cert"  # the Gateway's credentialName, same namespace
    assert {"*.example.com", "api.example.com"} <= set(cert["dnsNames"])
    issuer = _find(cert["issuerRef"]["kind"], cert["issuerRef"]["name"]).body["spec"]
    assert "ca" in issuer, "tls-cert must come from a CA issuer"
    ca = next(
        d.body["spec"]
        for d in objects()
        if d.kind == "Certificate" and d.body["spec"]["secretName"] == issuer["ca"]["secretName"]
    )
    assert ca["isCA"] is True


def test_prometheus_is_scrapable_from_the_host() -> None:
    svc = _find("Service", "prometheus", "istio-system").body["spec"]
    (port,) = svc["ports"]
    assert port["port"] == 9090
    for cluster in CLUSTERS:
        node = _only(f"kind/{cluster}.yaml", "Cluster")["nodes"][0]
        assert port["nodePort"] in [m["containerPort"] for m in node["extraPortMappings"]]


def test_rbac_drill_role_is_only_granted_per_namespace() -> None:
    """The drill ClusterRole must never be bound cluster-wide: the blast radius is per namespace."""
    for doc in (d for d in objects() if d.kind == "ClusterRoleBinding"):
        assert doc.body["roleRef"]["name"] != "meshproof-drill", doc.where
    nightly = _find("ClusterRole", "meshproof-nightly").body
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    for rule in nightly["rules"]:
        extra = writes & set(rule["verbs"])
        assert not extra, f"nightly role writes {rule['resources']}: {extra}"


def test_manifests_paths_are_documented() -> None:
    readme = (CLUSTERS_DIR / "README.md").read_text()
    for sub in (
        "kind/",
        "istio/",
        "mesh/",
        "workloads/",
        "consul/",
        "cert-manager/",
        "prometheus/",
        "metallb/",
        "rbac/",
        "schemas/",
        "scripts/",
    ):
        assert sub in readme, f"clusters/README.md does not describe {sub}"
    assert Path(CLUSTERS_DIR / "versions.env").is_file()
