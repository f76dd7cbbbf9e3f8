"""DISCOVERY's Kubernetes reads list Services and Endpoints in pages: every object once, and a
number of requests that grows with pages, not with services."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshproof.checks import discovery
from meshproof.clients.kube import ClusterApi, connect
from tests.support.kube_apiserver import RunningApiServer, running_apiserver

pytestmark = pytest.mark.lab

NS = "sample"
COUNT = 7
PAGE = 3


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("listing")) as running:
        yield running


@pytest.fixture(scope="module")
def api(apiserver: RunningApiServer) -> ClusterApi:
    api = connect(apiserver.cluster, context=apiserver.cluster, kubeconfig=apiserver.kubeconfig,
                  timeout=10.0)
    api.create("/api/v1/namespaces", {"metadata": {"name": NS}})
    for i in range(COUNT):
        name = f"svc-{i}"
        api.create(f"/api/v1/namespaces/{NS}/services", {
            "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80 + i}]}})
        ready = [{"ip": f"127.20.0.{i + 1}"}] if i % 2 == 0 else []
        api.create(f"/api/v1/namespaces/{NS}/endpoints", {
            "metadata": {"name": name},
            "subsets": [{"addresses": ready, "ports": [{"port": 8080}]}] if ready else []})
    return api


def test_endpoints_and_services_listed_in_pages(api: ClusterApi, apiserver: RunningApiServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery, "LIST_PAGE", PAGE)
    before = len(apiserver.requests())
    endpoints = discovery.all_kubernetes_endpoints(api, [NS, "absent"])
    services = discovery._services(api, [NS])
    lists = apiserver.requests()[before:]

    assert endpoints == {(NS, f"svc-{i}"): ({f"127.20.0.{i + 1}:8080"} if i % 2 == 0 else set())
                         for i in range(COUNT)}
    for name, ns, _port in services:
        assert endpoints[(ns, name)] == discovery.kubernetes_endpoints(api, name, ns)
    assert sorted(services) == sorted((f"svc-{i}", NS, 80 + i) for i in range(COUNT))
    pages = -(-COUNT // PAGE)
    assert len(lists) == 2 * pages + 1  # Endpoints and Services of NS, Endpoints of "absent"
    assert {r.verb for r in lists} == {"list"}
