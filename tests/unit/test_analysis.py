"""Config analysis over object fixtures: every analyzer finds its problem, and only that."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshproof.analysis import ERROR, WARNING, ClusterObjects, Finding, analyze_objects
from meshproof.checks.config import judge_findings
from meshproof.sli.verdict import Verdict

NAMESPACES = ["production"]


def obj(kind: str, name: str, namespace: str = "production", spec: Any = None,
        **meta: Any) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "namespace": namespace, **meta},
            "spec": spec or {}}


def pod(name: str, namespace: str, containers: dict[str, str]) -> dict[str, Any]:
    return obj("Pod", name, namespace,
               {"containers": [{"name": n, "image": i} for n, i in containers.items()]})


def healthy(cluster: str = "aws-eks", **extra: list[dict[str, Any]]) -> ClusterObjects:
    """One cluster of a well-configured mesh, plus ``extra`` objects by resource."""
    objects: dict[str, list[dict[str, Any]]] = {
        "services": [obj("Service", "catalog")],
        "pods": [pod("istiod-1", "istio-system", {"discovery": "docker.io/istio/pilot:1.31.0"}),
                 pod("catalog-1", "production",
                     {"catalog": "docker.io/istio/examples:1.0",
                      "istio-proxy": "docker.io/istio/proxyv2:1.31.0"})],
        "destinationrules": [obj("DestinationRule", "catalog", spec={
            "host": "catalog",
            "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}},
            "subsets": [{"name": "v1", "labels": {"version": "v1"}}]})],
        "virtualservices": [obj("VirtualService", "catalog", spec={
            "hosts": ["catalog"],
            "http": [{"route": [{"destination": {"host": "catalog", "subset": "v1"}}]}]})],
        "peerauthentications": [obj("PeerAuthentication", "default",
                                    spec={"mtls": {"mode": "STRICT"}})],
    }
    for resource, items in extra.items():
        objects[resource] = objects.get(resource, []) + items
    return ClusterObjects(cluster, objects)


def findings(*clusters: ClusterObjects) -> list[Finding]:
    return analyze_objects(list(clusters), NAMESPACES)


def codes(found: list[Finding]) -> list[tuple[str, str]]:
    return [(f.level, f.code) for f in found]


def test_a_well_configured_mesh_has_no_findings() -> None:
    assert findings(healthy("aws-eks"), healthy("gcp-gke")) == []


def test_consecutive_errors_is_a_deprecated_field_with_its_fix() -> None:
    rule = obj("DestinationRule", "old", spec={
        "host": "catalog", "trafficPolicy": {"outlierDetection": {"consecutiveErrors": 7}}})
    [found] = findings(healthy(destinationrules=[rule]))
    assert (found.level, found.code, found.object) == (WARNING, "Deprecated",
                                                       "DestinationRule production/old")
    assert found.fix == "replace consecutiveErrors: 7 with consecutive5xxErrors: 7"
    assert "fix: replace consecutiveErrors" in str(found)


def test_consecutive_errors_in_a_subset_policy_is_found_too() -> None:
    rule = obj("DestinationRule", "old", spec={"host": "catalog", "subsets": [
        {"name": "v9", "trafficPolicy": {"outlierDetection": {"consecutiveErrors": 5}}}]})
    assert codes(findings(healthy(destinationrules=[rule]))) == [(WARNING, "Deprecated")]


@pytest.mark.parametrize("written", [
    {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(
        {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService"})}},
    {"managedFields": [{"manager": "kubectl", "apiVersion": "networking.istio.io/v1alpha3"}]},
])
def test_objects_written_as_old_api_versions_are_found(written: dict[str, Any]) -> None:
    vs = obj("VirtualService", "legacy", spec={"hosts": ["catalog"]}, **written)
    [found] = findings(healthy(virtualservices=[vs]))
    assert (found.level, found.code) == (WARNING, "DeprecatedApiVersion")
    assert "networking.istio.io/v1" in found.fix


def test_objects_written_as_v1_are_not_flagged() -> None:
    vs = obj("VirtualService", "new", spec={"hosts": ["catalog"]}, managedFields=[
        {"manager": "kubectl", "apiVersion": "networking.istio.io/v1"}])
    assert findings(healthy(virtualservices=[vs])) == []


def test_a_route_to_a_missing_host_subset_or_gateway_is_an_error() -> None:
    vs = obj("VirtualService", "broken", spec={
        "hosts": ["catalog"], "gateways": ["mesh", "istio-system/missing-gateway"],
        "http": [{"route": [{"destination": {"host": "reviews"}},
                            {"destination": {"host": "catalog", "subset": "v7"}}]}],
        "tcp": [{"route": [{"destination": {"host": "nothing.example.com"}}]}]})
    found = findings(healthy(virtualservices=[vs]))
    assert codes(found) == [(ERROR, "ReferencedResourceNotFound")] * 4
    messages = " | ".join(f.message for f in found)
    assert "gateway istio-system/missing-gateway" in messages
    assert "reviews.production.svc.cluster.local" in messages
    assert "subset v7" in messages
    assert "nothing.example.com" in messages


def test_a_service_entry_host_resolves() -> None:
    entry = obj("ServiceEntry", "external", spec={"hosts": ["api.example.com"]})
    vs = obj("VirtualService", "out", spec={
        "hosts": ["api.example.com"],
        "http": [{"route": [{"destination": {"host": "api.example.com"}}]}]})
    assert findings(healthy(serviceentries=[entry], virtualservices=[vs])) == []


def test_routes_outside_the_namespaces_under_test_are_not_judged() -> None:
    vs = obj("VirtualService", "elsewhere", "other", spec={
        "http": [{"route": [{"destination": {"host": "missing"}}]}]})
    assert findings(healthy(virtualservices=[vs])) == []


def test_a_multi_cluster_host_without_outlier_detection_warns() -> None:
    plain = obj("DestinationRule", "catalog", spec={"host": "catalog", "subsets": [{"name": "v1"}]})
    east = ClusterObjects("aws-eks", {**healthy().objects, "destinationrules": [plain]})
    found = findings(east, healthy("gcp-gke"))
    assert [(f.cluster, f.level, f.code) for f in found] == [
        ("aws-eks", WARNING, "FailoverWithoutOutlierDetection")]
    assert "outlierDetection" in found[0].fix


def test_a_locality_failover_setting_without_outlier_detection_warns() -> None:
    rule = obj("DestinationRule", "failover", spec={"host": "catalog", "subsets": [{"name": "v1"}],
                                                    "trafficPolicy": {
        "loadBalancer": {"localityLbSetting": {"failover": [{"from": "a", "to": "b"}]}}}})
    only = ClusterObjects("aws-eks", {**healthy().objects, "destinationrules": [rule]})
    [found] = findings(only)
    assert (found.code, found.object) == ("FailoverWithoutOutlierDetection",
                                          "DestinationRule production/failover")


def test_conflicting_peer_authentications_are_errors() -> None:
    second = obj("PeerAuthentication", "permissive", spec={"mtls": {"mode": "PERMISSIVE"}})
    selected = [obj("PeerAuthentication", f"pa{i}", spec={
        "selector": {"matchLabels": {"app": "catalog"}}, "mtls": {"mode": "STRICT"}})
        for i in range(2)]
    found = findings(healthy(peerauthentications=[second, *selected]))
    assert codes(found) == [(ERROR, "ConflictingPeerAuthentication")] * 2
    assert "2 namespace-wide" in found[0].message
    assert "select the same workloads" in found[1].message


@pytest.mark.parametrize(("proxy", "level", "words"), [
    ("1.30.2", WARNING, "one minor version behind"),
    ("1.29.0", ERROR, "2 minor versions behind"),
    ("1.32.0", ERROR, "ahead of istiod"),
])
def test_proxy_version_skew_follows_istios_policy(proxy: str, level: str, words: str) -> None:
    old = pod("old-1", "production", {"istio-proxy": f"docker.io/istio/proxyv2:{proxy}"})
    [found] = findings(healthy(pods=[old]))
    assert (found.level, found.code) == (level, "ProxyVersionSkew")
    assert words in found.message
    assert "1.31" in found.fix


def test_a_patch_level_difference_is_no_skew() -> None:
    patch = pod("p-1", "production", {"istio-proxy": "docker.io/istio/proxyv2:1.31.4"})
    assert findings(healthy(pods=[patch])) == []


def test_control_planes_on_different_minor_versions_warn() -> None:
    newer = healthy("gcp-gke")
    newer_pods = [pod("istiod-1", "istio-system", {"discovery": "docker.io/istio/pilot:1.32.0"}),
                  pod("c", "production", {"istio-proxy": "docker.io/istio/proxyv2:1.32.0"})]
    found = findings(healthy("aws-eks"), ClusterObjects("gcp-gke", {**newer.objects,
                                                                    "pods": newer_pods}))
    assert [(f.cluster, f.level, f.code) for f in found] == [
        ("aws-eks", WARNING, "ControlPlaneVersionSkew")]


def test_config_valid_is_violated_by_errors_and_only_by_errors() -> None:
    warning = Finding(WARNING, "Deprecated", "aws-eks", "DestinationRule a/b", "old", "fix it")
    error = Finding(ERROR, "ReferencedResourceNotFound", "aws-eks", "VirtualService a/b", "no")
    held = judge_findings([warning], NAMESPACES, max_errors=0)
    assert held.verdict is Verdict.HELD
    assert held.evidence["warning_count"] == 1
    violated = judge_findings([warning, error], NAMESPACES, max_errors=0)
    assert violated.verdict is Verdict.VIOLATED
    assert violated.evidence["errors"] == [str(error)]
