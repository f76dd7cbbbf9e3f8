"""DISCOVERY's bulk Consul read (the sync node's services and checks) against the lab's Consul
server: it gives what one ``/v1/health/service/<s>?passing`` read per service gives."""

from __future__ import annotations

from collections.abc import Iterator

import consul
import pytest

from meshproof.checks.discovery import SYNC_NODE, consul_endpoints, consul_sync_endpoints
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually
from tests.support.consul_lab import consul_server

pytestmark = pytest.mark.lab

IP = "127.93.9.1"
SERVICES = [("web", "sample"), ("api", "sample"), ("db", "other")]


@pytest.fixture(scope="module")
def cc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[consul.Consul]:
    with consul_server(tmp_path_factory.mktemp("consul"), ip=IP, peers=[]):
        client = consul.Consul(host=IP, port=8500)

        def leader() -> None:
            assert client.status.leader() == f"{IP}:8300"

        eventually(leader, timeout=10, interval=DEFAULT_TIMEOUTS.poll_interval / 5,
                   what="a Consul leader")
        yield client


def _register(cc: consul.Consul, service: str, number: int, address: str,
              status: str | None) -> None:
    check = None if status is None else {
        "CheckID": f"{service}-{number}", "Name": "Kubernetes Readiness Check",
        "ServiceID": f"{service}-{number}", "Status": status}
    assert cc.catalog.register(SYNC_NODE, "127.0.0.1", service={
        "Service": service, "ID": f"{service}-{number}", "Address": address, "Port": 8080,
        "Tags": ["k8s"]}, check=check)


def _one_at_a_time(cc: consul.Consul) -> dict[str, set[str] | None]:
    return {f"{name}-{ns}": consul_endpoints(cc, name, ns) for name, ns in SERVICES}


def test_bulk_read_matches_the_per_service_reads(cc: consul.Consul) -> None:
    assert consul_sync_endpoints(cc) is None, "no sync node registered yet"
    _register(cc, "web-sample", 1, "127.1.0.5", "passing")
    _register(cc, "web-sample", 2, "127.1.0.6", "critical")
    _register(cc, "api-sample", 1, "127.1.0.7", None)
    _register(cc, "api-sample", 2, "127.1.0.8", "warning")

    bulk = consul_sync_endpoints(cc)
    assert bulk == {"web-sample": {"127.1.0.5:8080"}, "api-sample": {"127.1.0.7:8080"}}
    per_service = _one_at_a_time(cc)
    assert per_service == {**bulk, "db-other": None}
    assert {key: bulk.get(key) for key in per_service} == per_service

    # A failing check of the node itself fails every instance on it.
    assert cc.catalog.register(SYNC_NODE, "127.0.0.1", check={
        "CheckID": "node-health", "Name": "node", "Status": "critical"})
    bulk = consul_sync_endpoints(cc)
    assert bulk == {"web-sample": set(), "api-sample": set()}
    assert {key: (bulk or {}).get(key) for key in per_service} == _one_at_a_time(cc)
