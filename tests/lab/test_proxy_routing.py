"""Sidecar outbound: VirtualService matches and weights, faults, retries, timeouts, local replies."""

from __future__ import annotations

import math
import socket
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from meshproof.lab.mesh.config import (
    Fault,
    HeaderMatch,
    HttpRoute,
    Retries,
    RouteDestination,
    RouteMatch,
)
from tests.support.mesh import (
    DestinationRule,
    MeshHarness,
    MeshPki,
    Pod,
    make_pki,
    standard_mesh,
    via_sidecar,
)

pytestmark = pytest.mark.lab

FQDN = "helloworld.sample.svc.cluster.local"
URL = "http://helloworld.sample:5000/hello"


@pytest.fixture(scope="module")
def mesh_pki() -> MeshPki:
    return make_pki()


@pytest.fixture
def mesh(mesh_pki: MeshPki) -> Iterator[tuple[MeshHarness, dict[str, Pod]]]:
    h, pods = standard_mesh(mesh_pki, net=71)
    h.istiod.pods.remove(pods["gcp_v1"])  # keep these tests inside one cluster
    h.istiod.destination_rules[FQDN] = DestinationRule(
        subsets={"v1": {"version": "v1"}, "v2": {"version": "v2"}}
    )
    try:
        yield h, pods
    finally:
        h.close()


def _canary_routes() -> list[HttpRoute]:
    """The runbook's VirtualService: env: canary → v2; everything else 90/10."""
    return [
        HttpRoute(
            matches=[RouteMatch(headers=[HeaderMatch(name="env", exact="canary")])],
            destinations=[RouteDestination(host=FQDN, port=5000, subset="v2", weight=100)],
        ),
        HttpRoute(
            destinations=[
                RouteDestination(host=FQDN, port=5000, subset="v1", weight=90),
                RouteDestination(host=FQDN, port=5000, subset="v2", weight=10),
            ]
        ),
    ]


def _binomial_two_sided_p(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial test p-value (sum of outcomes no likelier than k)."""
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return min(1.0, sum(x for x in pmf if x <= pmf[k] * (1 + 1e-9)))


def _versions(pod: Pod, n: int, headers: dict[str, str] | None = None) -> Counter[str]:
    seen: Counter[str] = Counter()
    with requests.Session() as s:
        for _ in range(n):
            r = via_sidecar(pod, URL, headers=headers, session=s)
            assert r.status_code == 200, r.text
            seen[r.text.split("version: ")[1].split(",")[0]] += 1
    return seen


def test_weighted_route_splits_90_10(mesh) -> None:
    h, pods = mesh
    h.istiod.virtual_services[FQDN] = _canary_routes()
    h.start()
    n = 400
    seen = _versions(pods["sleep"], n)
    assert set(seen) <= {"v1", "v2"}
    assert _binomial_two_sided_p(seen["v2"], n, 0.10) > 0.001, seen


def test_weighted_route_negative_control_detects_a_50_50_split(mesh) -> None:
    h, pods = mesh
    routes = _canary_routes()
    routes[1].destinations[0].weight = 50
    routes[1].destinations[1].weight = 50
    h.istiod.virtual_services[FQDN] = routes
    h.start()
    seen = _versions(pods["sleep"], 200)
    assert _binomial_two_sided_p(seen["v2"], 200, 0.10) < 0.001, seen


def test_canary_header_goes_to_v2_only(mesh) -> None:
    h, pods = mesh
    h.istiod.virtual_services[FQDN] = _canary_routes()
    h.start()
    assert _versions(pods["sleep"], 60, {"env": "canary"}) == Counter({"v2": 60})


def test_fault_abort_is_a_local_reply_flagged_fi(mesh) -> None:
    h, pods = mesh
    h.istiod.virtual_services[FQDN] = [
        HttpRoute(
            destinations=[RouteDestination(host=FQDN, port=5000)],
            fault=Fault(abort_status=500, abort_percentage=100.0),
        )
    ]
    h.start()
    r = via_sidecar(pods["sleep"], URL)
    assert (r.status_code, r.text) == (500, "fault filter abort")
    assert pods["v1"].app_server is not None and pods["v1"].app_server.hits == 0
    assert 'response_flags="FI"' in h.metrics(pods["sleep"])


def test_fault_without_percentage_injects_nothing(mesh) -> None:
    h, pods = mesh
    h.istiod.virtual_services[FQDN] = [
        HttpRoute(
            destinations=[RouteDestination(host=FQDN, port=5000)],
            fault=Fault(abort_status=500, delay=1.0),
        )
    ]
    h.start()
    t0 = time.monotonic()
    assert via_sidecar(pods["sleep"], URL).status_code == 200
    assert time.monotonic() - t0 < 0.5


def test_fault_delay_is_flagged_di_and_really_waits(mesh) -> None:
    h, pods = mesh
    h.istiod.virtual_services[FQDN] = [
        HttpRoute(
            destinations=[RouteDestination(host=FQDN, port=5000)],
            fault=Fault(delay=0.3, delay_percentage=100.0),
        )
    ]
    h.start()
    t0 = time.monotonic()
    assert via_sidecar(pods["sleep"], URL).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    assert pods["sleep"].proxy is not None
    m = pods["sleep"].proxy.runtime.metrics
    assert m.requests_total(reporter="source", response_flags="DI", response_code="200") == 1


def test_default_retries_hide_one_503_and_are_counted(mesh) -> None:
    h, pods = mesh
    h.start()
    v1, v2 = pods["v1"].app_server, pods["v2"].app_server
    assert v1 is not None and v2 is not None
    v1.fail_status = 503
    codes = Counter(via_sidecar(pods["sleep"], URL).status_code for _ in range(10))
    assert codes == Counter({200: 10})  # the retry goes to the other host
    cluster = f"cluster.outbound|5000||{FQDN};."
    assert h.stat(pods["sleep"], cluster + "upstream_rq_retry") >= 4
    assert h.stat(pods["sleep"], cluster + "upstream_rq_503") >= 4


def test_retries_off_and_route_timeout_gives_504_ut(mesh) -> None:
    h, pods = mesh
    h.istiod.virtual_services[FQDN] = [
        HttpRoute(
            destinations=[RouteDestination(host=FQDN, port=5000, subset="v1")],
            timeout=0.2,
            retries=Retries(attempts=0),
        )
    ]
    h.start()
    assert pods["v1"].app_server is not None
    pods["v1"].app_server.delay = 1.0
    r = via_sidecar(pods["sleep"], URL)
    assert (r.status_code, r.text) == (504, "upstream request timeout")
    assert 'response_flags="UT"' in h.metrics(pods["sleep"])


def test_connect_failure_after_retries_is_uf_urx(mesh) -> None:
    h, pods = mesh
    h.start()
    assert pods["v1"].proxy is not None and pods["v2"].proxy is not None
    h.loop.run(pods["v1"].proxy.stop())
    h.loop.run(pods["v2"].proxy.stop())
    r = via_sidecar(pods["sleep"], URL)
    assert r.status_code == 503
    assert (
        r.text
        == "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    )
    assert 'response_flags="UF,URX"' in h.metrics(pods["sleep"])


def test_no_endpoints_is_503_no_healthy_upstream(mesh) -> None:
    h, pods = mesh
    h.istiod.pods.remove(pods["v1"])
    h.istiod.pods.remove(pods["v2"])
    h.start()
    r = via_sidecar(pods["sleep"], URL)
    assert (r.status_code, r.text) == (503, "no healthy upstream")
    assert r.headers["server"] == "envoy"


def test_request_id_and_upstream_service_time_are_added(mesh) -> None:
    h, pods = mesh
    h.start()
    r = via_sidecar(pods["sleep"], "http://helloworld:5000/headers")  # short name, same namespace
    seen = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert len(seen["x-request-id"]) == 36
    assert int(r.headers["x-envoy-upstream-service-time"]) >= 0
    assert "x-envoy-peer-metadata" not in {k.lower() for k in r.headers}


def test_chunked_responses_and_expect_continue_bodies_cross_the_mesh(mesh) -> None:
    h, pods = mesh
    h.start()
    sleep = pods["sleep"]
    r = via_sidecar(sleep, "http://helloworld.sample:5000/chunked")
    assert r.text == "part 0\npart 1\npart 2\n"
    body = b"x" * 5000
    with socket.create_connection((sleep.ip, 15001), timeout=5) as s:
        s.sendall(
            b"POST http://helloworld.sample:5000/echo HTTP/1.1\r\n"
            b"Host: helloworld.sample:5000\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        assert s.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(body)
