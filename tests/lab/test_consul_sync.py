"""Catalog sync (the chart's ``consul-sync-catalog`` container) from a lab API server into the
lab's Consul server, observed with ``py-consul``: names, addresses, tags, meta, readiness
checks, removal, and the ``consul-stale`` pause."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import consul
import pytest
from kubernetes import client, config

from meshproof.lab.consul.control import set_sync_paused, sync_paused
from meshproof.lab.consul.registrations import service_id
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import consistently, eventually
from tests.support.consul_lab import ConsulProcess, catalog_sync, consul_server
from tests.support.kube_apiserver import RunningApiServer, running_apiserver

pytestmark = pytest.mark.lab

SERVER_IP = "127.93.1.1"
SYNC_IP = "127.93.1.2"
# Changes must reach Consul within seconds (the brief), well inside discovery_convergence.
WITHIN = 5.0
POLL = DEFAULT_TIMEOUTS.poll_interval / 5


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("apiserver")) as running:
        yield running


@pytest.fixture(scope="module")
def core(apiserver: RunningApiServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(str(apiserver.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, apiserver: RunningApiServer
          ) -> Iterator[tuple[ConsulProcess, ConsulProcess]]:
    tmp = tmp_path_factory.mktemp("consul")
    api = (apiserver.url, apiserver.token, apiserver.ca_file)
    with consul_server(tmp, ip=SERVER_IP, peers=[]) as server, \
            catalog_sync(tmp, ip=SYNC_IP, consul_ip=SERVER_IP, api=api) as sync:
        yield server, sync


@pytest.fixture()
def cc(stack: tuple[ConsulProcess, ConsulProcess]) -> consul.Consul:
    return consul.Consul(host=SERVER_IP, port=8500)


def _namespace(core: client.ApiClient, name: str) -> None:
    client.CoreV1Api(core).create_namespace({"metadata": {"name": name}})


def _service(core: client.ApiClient, ns: str, name: str, ports: list[dict[str, Any]],
             annotations: dict[str, str] | None = None) -> None:
    client.CoreV1Api(core).create_namespaced_service(ns, {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"selector": {"app": name}, "ports": ports}})


def _slice(core: client.ApiClient, ns: str, svc: str, endpoints: list[tuple[str, str, bool]],
           port: int, port_name: str = "http",
           more_ports: list[tuple[str, int]] | None = None) -> None:
    """An EndpointSlice as the lab's endpoints controller writes it: (pod, ip, ready)."""
    body = {"metadata": {"name": f"{svc}-abcde", "labels": {
        "kubernetes.io/service-name": svc,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "ports": [{"name": name, "port": number, "protocol": "TCP"}
                  for name, number in [(port_name, port), *(more_ports or [])]],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready, "serving": ready,
                                                         "terminating": False},
                       "nodeName": "aws-eks-control-plane", "zone": "us-east-1a",
                       "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}}
                      for pod, ip, ready in endpoints]}
    api = client.DiscoveryV1Api(core)
    try:
        api.replace_namespaced_endpoint_slice(f"{svc}-abcde", ns, body)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        api.create_namespaced_endpoint_slice(ns, body)


def _instances(cc: consul.Consul, name: str, *, passing: bool = False) -> dict[str, Any]:
    _, entries = cc.health.service(name, passing=passing)
    return {e["Service"]["Address"]: e for e in entries}


def test_services_appear_with_addresses_tags_meta_and_readiness(
        core: client.ApiClient, cc: consul.Consul) -> None:
    _namespace(core, "sample")
    _service(core, "sample", "helloworld", [{"name": "http", "port": 5000,
                                              "targetPort": 5000}])
    _slice(core, "sample", "helloworld", [("helloworld-v1-7d9-a1", "127.1.0.11", True),
                                          ("helloworld-v2-5c4-b2", "127.1.0.12", True),
                                          ("helloworld-v2-5c4-c3", "127.1.0.13", False)], 5000)

    def synced() -> dict[str, Any]:
        found = _instances(cc, "helloworld-sample")
        assert set(found) == {"127.1.0.11", "127.1.0.12", "127.1.0.13"}, found
        return found

    found = eventually(synced, timeout=WITHIN, interval=POLL, what="helloworld-sample in Consul")
    entry = found["127.1.0.11"]
    assert entry["Node"]["Node"] == "k8s-sync"
    assert entry["Node"]["Meta"] == {"external-source": "kubernetes"}
    svc = entry["Service"]
    assert svc["ID"] == service_id("helloworld-sample", "127.1.0.11")
    assert svc["Port"] == 0 and svc["Tags"] == ["k8s"]
    assert svc["Ports"] == [{"Name": "http", "Port": 5000, "Default": True}]
    assert svc["Meta"] == {"external-source": "kubernetes", "external-k8s-ns": "sample",
                           "port-http": "5000", "external-k8s-ref-name": "helloworld-v1-7d9-a1",
                           "external-k8s-ref-kind": "Pod",
                           "external-k8s-node-name": "aws-eks-control-plane",
                           "external-k8s-topology-zone": "us-east-1a"}
    assert [c["Status"] for c in found["127.1.0.13"]["Checks"]] == ["critical"]
    assert entry["Checks"][0]["Name"] == "Kubernetes Readiness Check"
    assert set(_instances(cc, "helloworld-sample", passing=True)) == {"127.1.0.11",
                                                                      "127.1.0.12"}
    _, services = cc.catalog.services()
    assert services["helloworld-sample"] == ["k8s"]


def test_a_two_port_service_is_registered_with_port_zero_and_its_ports(
        core: client.ApiClient, cc: consul.Consul) -> None:
    """consul-k8s ≥ 1.9 catalog sync (hashicorp/consul-k8s
    ``control-plane/catalog/to-consul/resource.go``, ``registerServiceInstance``, PR #4778)
    registers each ClusterIP endpoint with ``Port: 0`` and ``Ports``, the EndpointSlice's
    ports with the first flagged ``Default``; Consul answers them on ``/v1/health/service``
    and as ``ServicePorts`` on ``/v1/catalog/service`` (hashicorp/consul issue #23815)."""
    _namespace(core, "multi")
    _service(core, "multi", "shop", [{"name": "http", "port": 80, "targetPort": 8080},
                                      {"name": "metrics", "port": 9090, "targetPort": 9091}])
    _slice(core, "multi", "shop", [("shop-1", "127.1.0.51", True)], 8080,
           more_ports=[("metrics", 9091)])
    ports = [{"Name": "http", "Port": 8080, "Default": True},
             {"Name": "metrics", "Port": 9091, "Default": False}]

    def synced() -> dict[str, Any]:
        found = _instances(cc, "shop-multi")
        assert set(found) == {"127.1.0.51"}, found
        return found["127.1.0.51"]["Service"]

    svc = eventually(synced, timeout=WITHIN, interval=POLL, what="shop-multi in Consul")
    assert (svc["Port"], svc["Ports"]) == (0, ports)
    assert svc["Meta"]["port-http"] == "80" and svc["Meta"]["port-metrics"] == "9090"
    _, (entry,) = cc.catalog.service("shop-multi")
    assert (entry["ServicePort"], entry["ServicePorts"]) == (0, ports)


def test_denied_namespaces_and_opted_out_services_are_not_synced(
        core: client.ApiClient, cc: consul.Consul) -> None:
    _namespace(core, "istio-system")
    _service(core, "istio-system", "istiod", [{"name": "grpc-xds", "port": 15010}])
    _slice(core, "istio-system", "istiod", [("istiod-1", "127.1.0.20", True)], 15010)
    _namespace(core, "optout")
    _service(core, "optout", "private", [{"name": "http", "port": 80}],
             {"consul.hashicorp.com/service-sync": "false"})
    _slice(core, "optout", "private", [("private-1", "127.1.0.21", True)], 80)
    _service(core, "optout", "renamed", [{"name": "http", "port": 80}],
             {"consul.hashicorp.com/service-name": "billing"})
    _slice(core, "optout", "renamed", [("renamed-1", "127.1.0.22", True)], 80)

    def renamed() -> None:
        assert "127.1.0.22" in _instances(cc, "billing")

    eventually(renamed, timeout=WITHIN, interval=POLL, what="annotated service name in Consul")
    _, services = cc.catalog.services()
    assert not {"istiod-istio-system", "private-optout"} & set(services)


def test_deleted_endpoint_and_service_leave_consul(core: client.ApiClient,
                                                   cc: consul.Consul) -> None:
    _namespace(core, "shrink")
    _service(core, "shrink", "api", [{"name": "http", "port": 8080}])
    _slice(core, "shrink", "api", [("api-1", "127.1.0.31", True), ("api-2", "127.1.0.32", True)],
           8080)

    def both() -> None:
        assert set(_instances(cc, "api-shrink")) == {"127.1.0.31", "127.1.0.32"}

    eventually(both, timeout=WITHIN, interval=POLL, what="api-shrink with two instances")
    _slice(core, "shrink", "api", [("api-1", "127.1.0.31", True)], 8080)

    def one() -> None:
        assert set(_instances(cc, "api-shrink")) == {"127.1.0.31"}

    eventually(one, timeout=WITHIN, interval=POLL, what="the deleted endpoint gone from Consul")
    client.CoreV1Api(core).delete_namespaced_service("api", "shrink")

    def gone() -> None:
        _, services = cc.catalog.services()
        assert "api-shrink" not in services

    eventually(gone, timeout=WITHIN, interval=POLL, what="the deleted service gone from Consul")


def test_pausing_sync_freezes_the_catalog_until_resumed(
        core: client.ApiClient, cc: consul.Consul,
        stack: tuple[ConsulProcess, ConsulProcess]) -> None:
    _namespace(core, "stale")
    _service(core, "stale", "cart", [{"name": "http", "port": 9000}])
    _slice(core, "stale", "cart", [("cart-1", "127.1.0.41", True)], 9000)

    def present() -> None:
        assert "127.1.0.41" in _instances(cc, "cart-stale")

    eventually(present, timeout=WITHIN, interval=POLL, what="cart-stale in Consul")
    set_sync_paused(SYNC_IP, True)
    assert sync_paused(SYNC_IP)
    try:
        client.CoreV1Api(core).delete_namespaced_service("cart", "stale")
        client.DiscoveryV1Api(core).delete_namespaced_endpoint_slice("cart-abcde", "stale")

        def still_there() -> None:
            assert "127.1.0.41" in _instances(cc, "cart-stale", passing=True)

        consistently(still_there, duration=2.0, interval=POLL,
                     what="the deleted service kept by a paused sync")
        assert (Path(stack[1].pod_dir) / "lab-sync-paused").exists()
    finally:
        set_sync_paused(SYNC_IP, False)

    def healed() -> None:
        _, services = cc.catalog.services()
        assert "cart-stale" not in services

    eventually(healed, timeout=WITHIN, interval=POLL, what="the stale entry removed on resume")
