"""DISCOVERY's readers against what current Istio, Envoy and Consul answer (pure logic): Consul
instances at their default port whether a sync sets ``Ports`` or ``Port``, and sidecar hosts
without the not-ready endpoints Istio 1.31 sends flagged ``/failed_eds_health``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshproof.checks import discovery
from meshproof.checks.discovery import (
    SYNC_NODE,
    consul_endpoints,
    consul_sync_endpoints,
    sidecar_endpoints,
)
from meshproof.clients.consul import instance_port

HOST = "helloworld.sample.svc.cluster.local"


def _multi_port(address: str, sid: str) -> dict[str, Any]:
    """An instance as consul-k8s ≥ 1.9 catalog sync registers it (resource.go,
    ``registerServiceInstance``): ``Port`` 0, the default port flagged in ``Ports``."""
    return {"ID": sid, "Service": "helloworld-sample", "Address": address, "Port": 0,
            "Ports": [{"Name": "metrics", "Port": 9090, "Default": False},
                      {"Name": "http", "Port": 5000, "Default": True}],
            "Tags": ["k8s"]}


def _single_port(address: str, sid: str) -> dict[str, Any]:
    """An instance as an older sync (or any plain registration) writes it: ``Port`` only."""
    return {"ID": sid, "Service": "helloworld-sample", "Address": address, "Port": 5000,
            "Tags": ["k8s"]}


class _Consul:
    """The few ``py-consul`` calls DISCOVERY makes, answering what a Consul server holds."""

    def __init__(self, services: list[dict[str, Any]]) -> None:
        by_id = {s["ID"]: s for s in services}
        self.health = SimpleNamespace(
            service=lambda name, passing: (1, [{"Service": s} for s in services
                                               if s["Service"] == name]),
            node=lambda node: (1, []))
        self.catalog = SimpleNamespace(
            services=lambda: (1, {s["Service"]: ["k8s"] for s in services}),
            node=lambda node: (1, {"Services": by_id} if node == SYNC_NODE else None))


@pytest.mark.parametrize("shape", [_multi_port, _single_port])
def test_consul_instances_are_read_at_their_default_port(shape: Any) -> None:
    client = _Consul([shape("127.1.0.5", "hw-1"), shape("127.1.0.6", "hw-2")])
    want = {"127.1.0.5:5000", "127.1.0.6:5000"}
    assert consul_endpoints(client, "helloworld", "sample") == want
    assert consul_sync_endpoints(client) == {"helloworld-sample": want}


def test_instance_port_prefers_the_default_of_ports_then_port() -> None:
    assert instance_port(_multi_port("127.1.0.5", "hw-1")) == 5000
    assert instance_port(_single_port("127.1.0.5", "hw-1")) == 5000
    catalog_entry = {"ServicePort": 0, "ServicePorts": [{"Name": "http", "Port": 5000,
                                                         "Default": True}]}
    assert instance_port(catalog_entry, prefix="Service") == 5000
    assert instance_port({"Port": 0, "Ports": [{"Name": "a", "Port": 81}]}) == 81
    assert instance_port({"Port": 8080, "Ports": []}) == 8080
    assert instance_port({}) == 0


def test_sidecar_endpoints_leave_out_hosts_eds_marks_not_ready(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Istio 1.31 sends not-ready pods (``PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS``, istio/istio
    ``pilot/pkg/features/experimental.go``); Envoy lists them ``/failed_eds_health``. An
    outlier-ejected host is still a discovered endpoint."""
    name = f"outbound|5000||{HOST}"
    other = "outbound|9080||reviews.sample.svc.cluster.local"
    text = "\n".join([
        f"{name}::observability_name::{name}",
        f"{name}::127.1.0.5:5000::rq_total::3",
        f"{name}::127.1.0.5:5000::health_flags::healthy",
        f"{name}::127.1.0.6:5000::health_flags::/failed_eds_health",
        f"{name}::127.1.0.7:5000::health_flags::/failed_outlier_check",
        f"{name}::127.1.0.8:5000::health_flags::/failed_outlier_check/failed_eds_health",
        f"{name}::127.12.0.200:15443::health_flags::healthy",
        f"{other}::127.1.0.9:9080::health_flags::/failed_eds_health",
        "inbound|5000||::127.1.0.5:5000::health_flags::healthy",
    ]) + "\n"
    monkeypatch.setattr(discovery, "admin_get", lambda api, ns, pod, path: text)
    held = sidecar_endpoints(SimpleNamespace(cluster="aws-eks"), "sample", "curl-1")
    assert held == {name: {"127.1.0.5:5000", "127.1.0.7:5000", "127.12.0.200:15443"},
                    other: set()}
