"""The lab's Consul server (the chart's ``consul-server`` container) through ``py-consul`` and
plain HTTP, and the ``consul`` CLI as ``kubectl exec`` runs it from the image's bin dir."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import consul
import pytest

from meshproof.lab.consul.cli import TOP_LEVEL_HELP
from meshproof.lab.images import load_registrations, lookup
from meshproof.lab.kube.kubelet.launch import SRC_ROOT, image_bin_dir
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually
from tests.support.consul_lab import ConsulProcess, consul_server

pytestmark = pytest.mark.lab

IP = "127.93.2.1"
POLL = DEFAULT_TIMEOUTS.poll_interval / 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsulProcess]:
    with consul_server(tmp_path_factory.mktemp("consul"), ip=IP, peers=[]) as proc:
        cc = consul.Consul(host=IP, port=8500)

        def leader() -> None:
            assert cc.status.leader() == f"{IP}:8300"
            assert "consul-server-0" in {n["Node"] for n in cc.catalog.nodes()[1]}

        eventually(leader, timeout=10, interval=POLL, what="a leader with its catalog node")
        yield proc


@pytest.fixture()
def cc(server: ConsulProcess) -> consul.Consul:
    return consul.Consul(host=IP, port=8500)


def _get(path: str) -> tuple[int, dict[str, str], object]:
    try:
        with urllib.request.urlopen(f"http://{IP}:8500{path}", timeout=10) as reply:
            return reply.status, dict(reply.headers), json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_reads_carry_index_leader_and_contact_headers(cc: consul.Consul) -> None:
    status, headers, body = _get("/v1/catalog/services")
    assert status == 200 and body == {"consul": []}
    assert int(headers["X-Consul-Index"]) > 0
    assert headers["X-Consul-KnownLeader"] == "true"
    assert headers["X-Consul-LastContact"] == "0"
    assert cc.status.peers() == [f"{IP}:8300"]


def test_server_node_service_and_serf_check(cc: consul.Consul) -> None:
    _, nodes = cc.catalog.service("consul")
    assert [(n["Node"], n["ServiceAddress"], n["ServicePort"]) for n in nodes] == [
        ("consul-server-0", IP, 8300)]
    _, checks = cc.health.node("consul-server-0")
    assert [(c["CheckID"], c["Name"], c["Status"]) for c in checks] == [
        ("serfHealth", "Serf Health Status", "passing")]
    members = cc.agent.members()
    assert [(m["Name"], m["Addr"], m["Port"], m["Status"], m["Tags"]["role"], m["Tags"]["dc"])
            for m in members] == [("consul-server-0", IP, 8301, 1, "consul", "aws-eks")]
    me = cc.agent.self()
    assert me["Config"]["Datacenter"] == "aws-eks" and me["Config"]["Server"] is True


def test_catalog_register_health_and_deregister(cc: consul.Consul) -> None:
    assert cc.catalog.register("k8s-sync", "127.0.0.1", service={
        "Service": "web-sample", "ID": "web-sample-1", "Address": "127.1.0.5", "Port": 80,
        "Tags": ["k8s"], "Meta": {"external-k8s-ns": "sample"}}, check={
        "CheckID": "sample/web-sample-1", "Name": "Kubernetes Readiness Check",
        "ServiceID": "web-sample-1", "Status": "passing"})
    assert cc.catalog.register("k8s-sync", "127.0.0.1", service={
        "Service": "web-sample", "ID": "web-sample-2", "Address": "127.1.0.6", "Port": 80,
        "Tags": ["k8s"]}, check={"CheckID": "sample/web-sample-2", "ServiceID": "web-sample-2",
                                 "Name": "Kubernetes Readiness Check", "Status": "critical"})
    _, entries = cc.catalog.service("web-sample")
    assert {(e["ServiceID"], e["ServiceAddress"], e["Node"], e["Datacenter"]) for e in entries} \
        == {("web-sample-1", "127.1.0.5", "k8s-sync", "aws-eks"),
            ("web-sample-2", "127.1.0.6", "k8s-sync", "aws-eks")}
    _, passing = cc.health.service("web-sample", passing=True)
    assert [p["Service"]["ID"] for p in passing] == ["web-sample-1"]
    _, critical = cc.health.state("critical")
    assert "sample/web-sample-2" in {c["CheckID"] for c in critical}
    assert cc.catalog.deregister("k8s-sync", service_id="web-sample-2")
    _, entries = cc.catalog.service("web-sample")
    assert [e["ServiceID"] for e in entries] == ["web-sample-1"]
    _, node = cc.catalog.node("k8s-sync")
    assert set(node["Services"]) == {"web-sample-1"}


def test_blocking_query_returns_on_change_with_a_higher_index(cc: consul.Consul) -> None:
    index, _ = cc.catalog.services()
    result: dict[str, object] = {}

    def block() -> None:
        t0 = time.monotonic()
        result["index"], result["services"] = cc.catalog.services(index=index, wait="20s")
        result["took"] = time.monotonic() - t0

    waiter = threading.Thread(target=block)
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive(), "a blocking query must wait for a change"
    cc.catalog.register("k8s-sync", "127.0.0.1", service={"Service": "late-sample",
                                                           "Address": "127.1.0.9", "Port": 1})
    waiter.join(10)
    assert int(str(result["index"])) > int(index)
    assert "late-sample" in result["services"]  # type: ignore[operator]
    assert 0.4 < float(str(result["took"])) < 5
    t0 = time.monotonic()
    same, _ = cc.catalog.services(index=result["index"], wait="1s")
    assert same == result["index"] and time.monotonic() - t0 >= 0.9


def test_other_datacenter_and_bad_requests(cc: consul.Consul) -> None:
    status, _, body = _get("/v1/catalog/services?dc=gcp-gke")
    assert (status, body) == (500, "No path to datacenter")
    with pytest.raises(consul.ConsulException):
        cc.catalog.register("", "")


def test_kv_put_get_list_delete(cc: consul.Consul) -> None:
    assert cc.kv.put("meshproof/run", "r-123")
    assert cc.kv.put("meshproof/owner/name", "lab")
    _, entry = cc.kv.get("meshproof/run")
    assert entry["Value"] == b"r-123" and entry["Key"] == "meshproof/run"
    _, keys = cc.kv.get("meshproof/", keys=True, separator="/")
    assert keys == ["meshproof/owner/", "meshproof/run"]
    assert cc.kv.delete("meshproof/", recurse=True)
    assert cc.kv.get("meshproof/run")[1] is None


def _exec(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """``kubectl exec consul-server-0 -- consul ...`` as the kubelet runs it: the image's bin
    dir as PATH, nothing else of the host."""
    load_registrations()
    image = "hashicorp/consul:1.22.7"
    program = lookup(image)
    assert program is not None
    bin_dir = image_bin_dir(tmp, image, program)
    env = {"PATH": str(bin_dir), "PYTHONPATH": SRC_ROOT, "MESHPROOF_LAB_POD_IP": IP,
           "HOME": str(tmp)}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def test_cli_members_and_catalog_as_the_runbook_runs_them(
        cc: consul.Consul, tmp_path: Path) -> None:
    cc.catalog.register("k8s-sync", "127.0.0.1", service={
        "Service": "helloworld-sample", "ID": "hw-1", "Address": "127.1.0.11", "Port": 5000,
        "Tags": ["k8s"]})
    members = _exec(["consul", "members"], tmp_path)
    assert members.returncode == 0, members.stderr
    lines = members.stdout.splitlines()
    assert lines[0].split() == ["Node", "Address", "Status", "Type", "Build", "Protocol", "DC",
                                "Partition", "Segment"]
    assert lines[1].split() == ["consul-server-0", f"{IP}:8301", "alive", "server", "1.22.7",
                                "2", "aws-eks", "default", "<all>"]
    assert lines[0].index("Address") == lines[1].index(IP)
    services = _exec(["consul", "catalog", "services"], tmp_path)
    assert "consul" in services.stdout.splitlines()
    assert "helloworld-sample" in services.stdout.splitlines()
    nodes = _exec(["consul", "catalog", "nodes", "-service=helloworld-sample"], tmp_path)
    assert nodes.stdout.splitlines() == ["Node      ID  Address    DC",
                                         "k8s-sync      127.0.0.1  aws-eks"]
    server_nodes = _exec(["consul", "catalog", "nodes", "-service=consul"], tmp_path)
    row = server_nodes.stdout.splitlines()[1].split()
    assert row[0] == "consul-server-0" and len(row[1]) == 8 and row[2:] == [IP, "aws-eks"]


def test_cli_services_register_and_unknown_health_command(
        cc: consul.Consul, tmp_path: Path) -> None:
    done = _exec(["consul", "services", "register", "-name=legacy-db", "-address=10.9.8.7",
                  "-port=5432"], tmp_path)
    assert (done.returncode, done.stdout) == (0, "Registered service: legacy-db\n")
    _, entries = cc.catalog.service("legacy-db")
    assert [(e["Node"], e["ServiceAddress"], e["ServicePort"]) for e in entries] == [
        ("consul-server-0", "10.9.8.7", 5432)]
    gone = _exec(["consul", "services", "deregister", "-id=legacy-db"], tmp_path)
    assert (gone.returncode, gone.stdout) == (0, "Deregistered service: legacy-db\n")
    assert cc.catalog.service("legacy-db")[1] == []
    health = _exec(["consul", "health", "service", "legacy-db"], tmp_path)
    assert health.returncode == 127
    assert health.stdout == TOP_LEVEL_HELP + "\n"
    assert "Usage: consul [--version] [--help] <command> [<args>]" in health.stdout
