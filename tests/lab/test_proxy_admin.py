"""Admin, health and config delivery: /clusters, /config_dump, pilot-agent, readiness,
hot updates and a config source that goes away."""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from aiohttp import web

from meshproof.errors import LabError
from meshproof.lab.mesh.config import Certificate, ProxyConfig
from meshproof.lab.mesh.pilot_agent import admin_request, write_pilot_agent_script
from meshproof.lab.mesh.proxy import ADMIN_PORT_FILE, HttpConfigSource, Proxy, run_proxy
from meshproof.waiting import eventually
from tests.support.mesh import MeshHarness, MeshPki, Pod, make_pki, standard_mesh, via_sidecar

pytestmark = pytest.mark.lab

FQDN = "helloworld.sample.svc.cluster.local"
URL = "http://helloworld.sample:5000/hello"


@pytest.fixture(scope="module")
def mesh_pki() -> MeshPki:
    return make_pki()


@pytest.fixture
def mesh(mesh_pki: MeshPki) -> Iterator[tuple[MeshHarness, dict[str, Pod]]]:
    h, pods = standard_mesh(mesh_pki, net=101)
    h.istiod.pods.remove(pods["gcp_v1"])
    try:
        yield h, pods
    finally:
        h.close()


def test_admin_is_bound_to_localhost_only(mesh) -> None:
    h, pods = mesh
    h.start()
    sleep = pods["sleep"]
    assert sleep.proxy is not None
    assert h.admin(sleep, "/ready") == "LIVE\n"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{sleep.ip}:{sleep.proxy.admin_port}/stats", timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{sleep.ip}:15000/stats", timeout=2)


def test_clusters_lists_hosts_with_envoys_fields(mesh) -> None:
    h, pods = mesh
    h.istiod.pods.append(pods["gcp_v1"])
    h.start()
    sleep = pods["sleep"]
    for _ in range(3):  # round robin: one request per host
        assert via_sidecar(sleep, URL).status_code == 200
    text = h.admin(sleep, "/clusters")
    name = f"outbound|5000||{FQDN}"
    for pod in (pods["v1"], pods["v2"]):
        prefix = f"{name}::{pod.ip}:5000::"
        for field in (
            "cx_active::1",
            "rq_success::1",
            "rq_error::0",
            "rq_total::1",
            "health_flags::healthy",
            "weight::1",
            "region::us-east-1",
            "zone::us-east-1a",
        ):
            assert prefix + field in text, prefix + field
    remote = f"{name}::{h.istiod.clusters['gcp-gke'].eastwest_ip}:15443::"
    assert remote + "region::us-central1" in text
    assert remote + "rq_total::1" in text
    assert f"{name}::default_priority::max_connections::4294967295" in text


def test_config_dump_and_server_info_are_shaped_like_envoys(mesh) -> None:
    h, pods = mesh
    h.start()
    sleep = pods["sleep"]
    dump = json.loads(h.admin(sleep, "/config_dump"))
    types = [c["@type"].rsplit(".", 1)[1] for c in dump["configs"]]
    assert types == [
        "BootstrapConfigDump",
        "ClustersConfigDump",
        "ListenersConfigDump",
        "RoutesConfigDump",
        "SecretsConfigDump",
    ]
    node = dump["configs"][0]["bootstrap"]["node"]
    assert node["id"] == f"sidecar~{sleep.ip}~{sleep.name}.sample~sample.svc.cluster.local"
    assert node["metadata"]["CLUSTER_ID"] == "aws-eks"
    names = [c["cluster"]["name"] for c in dump["configs"][1]["dynamic_active_clusters"]]
    assert f"outbound|5000||{FQDN}" in names
    secrets = [s["name"] for s in dump["configs"][4]["dynamic_active_secrets"]]
    assert secrets == ["default", "ROOTCA"]
    eds = json.loads(h.admin(sleep, "/config_dump?include_eds"))["configs"][-1]
    assert eds["@type"].endswith("EndpointsConfigDump")
    (hello,) = [
        c["endpoint_config"]
        for c in eds["dynamic_endpoint_configs"]
        if c["endpoint_config"]["cluster_name"] == f"outbound|5000||{FQDN}"
    ]
    addresses = sorted(
        lb["endpoint"]["address"]["socket_address"]["address"]
        for loc in hello["endpoints"]
        for lb in loc["lb_endpoints"]
    )
    assert addresses == sorted([pods["v1"].ip, pods["v2"].ip])
    info = json.loads(h.admin(sleep, "/server_info"))
    assert info["state"] == "LIVE"


def test_pilot_agent_request_reaches_the_admin_from_the_pod_dir(tmp_path: Path, mesh) -> None:
    h, pods = mesh
    h.start()
    sleep = pods["sleep"]
    assert sleep.proxy is not None
    (tmp_path / ADMIN_PORT_FILE).write_text(f"{sleep.proxy.admin_port}\n")
    script = write_pilot_agent_script(tmp_path)
    out = subprocess.run(
        [str(script), "request", "GET", "stats"],
        capture_output=True,
        timeout=30,
        check=True,
        text=True,
    ).stdout
    assert "server.state: 0" in out
    bad = subprocess.run(
        [str(script), "request", "GET", "nope"],
        capture_output=True,
        timeout=30,
        check=False,
        text=True,
    )
    assert bad.returncode == 1


def test_readiness_needs_a_config_and_an_unexpired_certificate(mesh, mesh_pki) -> None:
    h, pods = mesh
    sleep = pods["sleep"]
    proxy = Proxy(pod_ip=sleep.ip, log=sleep.logs.append)
    sleep.proxy = proxy
    h.loop.run(proxy.start())
    url = f"http://{sleep.ip}:15021/healthz/ready"
    r = requests.get(url, timeout=5)
    assert r.status_code == 503 and "no config" in r.text
    h.start()
    assert requests.get(url, timeout=5).status_code == 200
    sleep.cert = mesh_pki.workload(
        "aws-eks",
        "sample",
        "sleep",
        ttl=datetime.timedelta(hours=1),
        not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2),
    )
    h.push()
    r = requests.get(url, timeout=5)
    assert r.status_code == 503 and "expired" in r.text


def test_hot_update_keeps_endpoints_health_and_a_push_without_cert_keeps_the_cert(mesh) -> None:
    h, pods = mesh
    h.start()
    sleep = pods["sleep"]
    assert sleep.proxy is not None
    cert_before = sleep.proxy.runtime.cert
    config = h.istiod.config_for(sleep)
    config.certificate = None
    h.loop.run(sleep.proxy.apply(config))
    assert sleep.proxy.runtime.cert is cert_before
    assert via_sidecar(sleep, URL).status_code == 200
    assert h.stat(sleep, f"cluster.outbound|5000||{FQDN};.upstream_rq_total") == 1


def test_run_proxy_pulls_config_over_http_and_survives_the_source_going_away(
    mesh, tmp_path: Path
) -> None:
    h, pods = mesh
    h.istiod.pods.remove(pods["sleep"])
    h.start()
    sleep = pods["sleep"]
    config = h.istiod.config_for(sleep)
    served: dict[str, ProxyConfig] = {"config": config}

    async def handler(request: web.Request) -> web.Response:
        cfg = served["config"]
        if request.query.get("version") == cfg.version:
            return web.Response(status=304)
        return web.Response(body=cfg.to_json().encode(), content_type="application/json")

    async def start_istiod() -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/proxy/sample/sleep", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    runner = h.loop.run(start_istiod())
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    source = HttpConfigSource(f"http://127.0.0.1:{port}/proxy/sample/sleep")
    task = asyncio.run_coroutine_threadsafe(
        run_proxy(
            source,
            pod_ip=sleep.ip,
            pod_dir=tmp_path,
            poll_interval=0.1,
            stop=stop,
            log=sleep.logs.append,
        ),
        h.loop.loop,
    )
    try:

        def ready() -> None:
            try:
                r = requests.get(f"http://{sleep.ip}:15021/healthz/ready", timeout=2)
            except requests.ConnectionError as exc:
                raise AssertionError(f"health port not open yet: {exc}") from exc
            assert r.status_code == 200, r.text

        eventually(ready, timeout=10, interval=0.1, what="proxy ready after the first push")
        assert (tmp_path / ADMIN_PORT_FILE).read_text().strip().isdigit()
        assert via_sidecar(sleep, URL).status_code == 200
        h.loop.run(runner.cleanup())  # istiod goes away

        def warned() -> None:
            assert any("config" in ln and "127.0.0.1" in ln for ln in sleep.logs)

        eventually(warned, timeout=10, interval=0.1, what="proxy noticed istiod is gone")
        assert via_sidecar(sleep, URL).status_code == 200
        assert requests.get(f"http://{sleep.ip}:15021/healthz/ready", timeout=2).status_code == 200
        status, body = admin_request(tmp_path, "GET", "stats")
        assert status == 200
        assert "cluster.xds-grpc;.upstream_cx_active: 0" in body.decode()
        assert "cluster.xds-grpc;.upstream_cx_connect_fail: " in body.decode()
    finally:
        h.loop.loop.call_soon_threadsafe(stop.set)
        task.result(10)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{sleep.ip}:15021/healthz/ready", timeout=2)


def test_a_push_with_a_broken_certificate_is_rejected_and_the_old_config_stays(mesh) -> None:
    h, pods = mesh
    h.start()
    sleep = pods["sleep"]
    assert sleep.proxy is not None and sleep.cert is not None
    before = sleep.proxy.runtime.config
    bad = h.istiod.config_for(sleep)
    bad.certificate = Certificate(
        sleep.cert.cert_chain_pem, "not a key", sleep.cert.root_bundle_pem
    )
    with pytest.raises(LabError, match=r"sleep-7f8c9\.sample in cluster aws-eks"):
        h.loop.run(sleep.proxy.apply(bad))
    assert sleep.proxy.runtime.config is before
    assert via_sidecar(sleep, URL).status_code == 200


def test_the_proxy_program_runs_from_a_config_file_and_stops_on_sigterm(mesh, tmp_path) -> None:
    h, pods = mesh
    h.istiod.pods.remove(pods["sleep"])
    h.start()
    sleep = pods["sleep"]
    cfg = tmp_path / "config.json"
    cfg.write_text(h.istiod.config_for(sleep).to_json())
    pod_dir = tmp_path / "pod"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meshproof.lab.mesh",
            "--config-file",
            str(cfg),
            "--pod-ip",
            sleep.ip,
            "--pod-dir",
            str(pod_dir),
            "--poll-interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def ready() -> None:
            try:
                r = requests.get(f"http://{sleep.ip}:15021/healthz/ready", timeout=2)
            except requests.ConnectionError as exc:
                raise AssertionError(str(exc)) from exc
            assert r.status_code == 200

        eventually(ready, timeout=20, interval=0.1, what="proxy process ready")
        assert via_sidecar(sleep, URL).status_code == 200
        out = subprocess.run(
            [str(pod_dir / "bin" / "pilot-agent"), "request", "GET", "clusters"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert f"outbound|5000||{FQDN}::" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert b'"GET /hello HTTP/1.1" 200' in stdout


def test_an_eds_unhealthy_host_is_flagged_failed_eds_health_and_gets_no_traffic(mesh) -> None:
    """A not-ready pod istiod sends as ``UNHEALTHY`` (Istio ≥ 1.31, istio/istio
    ``pilot/pkg/features/experimental.go`` ``PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS``;
    ``pilot/pkg/xds/endpoints/endpoint_builder.go`` ``buildEnvoyLbEndpoint``) is listed in
    ``/clusters`` with ``health_flags::/failed_eds_health`` (Envoy
    ``source/common/upstream/host_utility.cc`` ``healthFlagsToString``), counts in
    ``membership_total`` but not ``membership_healthy``, and gets no request; with every
    host unhealthy the answer is 503 no healthy upstream, since Istio sets the panic
    threshold to 0 when it sends unhealthy endpoints
    (``pilot/pkg/networking/core/cluster_traffic_policy.go``)."""
    h, pods = mesh
    h.start()
    sleep, v1, v2 = pods["sleep"], pods["v1"], pods["v2"]
    assert sleep.proxy is not None
    name = f"outbound|5000||{FQDN}"

    def push(unhealthy: set[str]) -> None:
        assert sleep.proxy is not None
        config = h.istiod.config_for(sleep)
        for ep in next(c for c in config.clusters if c.name == name).endpoints:
            if ep.address in unhealthy:
                ep.health_status = "UNHEALTHY"
        h.loop.run(sleep.proxy.apply(config))

    push({v2.ip})
    answers = {via_sidecar(sleep, URL).text for _ in range(6)}
    assert answers == {f"Hello version: v1, instance: {v1.name}, cluster: aws-eks\n"}
    text = h.admin(sleep, "/clusters")
    assert f"{name}::{v2.ip}:5000::health_flags::/failed_eds_health" in text
    assert f"{name}::{v2.ip}:5000::rq_total::0" in text
    assert f"{name}::{v1.ip}:5000::health_flags::healthy" in text
    assert h.stat(sleep, f"cluster.{name};.membership_total") == 2
    assert h.stat(sleep, f"cluster.{name};.membership_healthy") == 1
    eds = json.loads(h.admin(sleep, "/config_dump?include_eds"))["configs"][-1]
    statuses = {lb["endpoint"]["address"]["socket_address"]["address"]: lb["health_status"]
                for c in eds["dynamic_endpoint_configs"]
                if c["endpoint_config"]["cluster_name"] == name
                for loc in c["endpoint_config"]["endpoints"] for lb in loc["lb_endpoints"]}
    assert statuses == {v1.ip: "HEALTHY", v2.ip: "UNHEALTHY"}
    push({v1.ip, v2.ip})
    r = via_sidecar(sleep, URL)
    assert (r.status_code, r.text) == (503, "no healthy upstream")
