"""Three lab Consul servers (``server.replicas: 3``): they find each other through the chart's
``-retry-join`` pod names resolved by the Kubernetes API, elect one leader, replicate the
catalog, elect a new leader within seconds when the leader's process is killed, and take the
restarted server back as a follower that has caught up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import consul
import pytest
from kubernetes import client, config

from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually
from tests.support.consul_lab import ConsulProcess, start_server
from tests.support.kube_apiserver import RunningApiServer, running_apiserver

pytestmark = pytest.mark.lab

IPS = ["127.93.3.1", "127.93.3.2", "127.93.3.3"]
# A new leader "within seconds": well under the time the suite allows a discovery change.
ELECTION = 5.0
POLL = DEFAULT_TIMEOUTS.poll_interval / 5


@pytest.fixture()
def apiserver(tmp_path: Path) -> Iterator[RunningApiServer]:
    (tmp_path / "api").mkdir()
    with running_apiserver(tmp_path / "api") as running:
        api = config.new_client_from_config(str(running.kubeconfig))
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": "consul"}})
        for i, ip in enumerate(IPS):
            name = f"consul-server-{i}"
            core.create_namespaced_pod("consul", {
                "metadata": {"name": name, "labels": {"app": "consul", "component": "server"}},
                "spec": {"containers": [{"name": "consul", "image": "hashicorp/consul:1.22.7"}]}})
            core.patch_namespaced_pod_status(name, "consul", {"status": {"podIP": ip}})
        api.close()
        yield running


@pytest.fixture()
def servers(tmp_path: Path, apiserver: RunningApiServer) -> Iterator[list[ConsulProcess]]:
    api = (apiserver.url, apiserver.token, apiserver.ca_file)
    procs: list[ConsulProcess] = []
    try:
        for i, ip in enumerate(IPS):
            procs.append(start_server(tmp_path, ip=ip, ordinal=i, replicas=3, api=api))
        yield procs
    finally:
        for p in procs:
            p.stop()


def _leaders(ips: list[str]) -> set[str]:
    return {consul.Consul(host=ip, port=8500).status.leader() for ip in ips}


def _one_leader(ips: list[str]) -> str:
    leaders = _leaders(ips)
    assert len(leaders) == 1 and "" not in leaders, leaders
    return leaders.pop()


def test_servers_elect_one_leader_and_share_the_catalog(servers: list[ConsulProcess]) -> None:
    leader = eventually(lambda: _one_leader(IPS), timeout=ELECTION, interval=POLL,
                        what="one leader among three servers")
    assert leader.endswith(":8300") and leader.split(":")[0] in IPS
    follower = next(ip for ip in IPS if not leader.startswith(ip))
    # A write through a follower is forwarded to the leader and replicated back.
    cc = consul.Consul(host=follower, port=8500)
    assert cc.catalog.register("k8s-sync", "127.0.0.1", service={
        "Service": "helloworld-sample", "ID": "hw-1", "Address": "127.1.0.11", "Port": 5000})

    def everywhere() -> None:
        for ip in IPS:
            _, found = consul.Consul(host=ip, port=8500).catalog.service("helloworld-sample")
            assert [e["ServiceAddress"] for e in found] == ["127.1.0.11"], ip

    eventually(everywhere, timeout=ELECTION, interval=POLL, what="the write seen by all servers")

    def three_members() -> None:
        members = consul.Consul(host=IPS[0], port=8500).agent.members()
        assert sorted((m["Name"], m["Status"]) for m in members) == [
            ("consul-server-0", 1), ("consul-server-1", 1), ("consul-server-2", 1)]
        assert len(consul.Consul(host=IPS[0], port=8500).status.peers()) == 3

    eventually(three_members, timeout=ELECTION, interval=POLL, what="three alive members")


def test_killing_the_leader_elects_another_and_keeps_the_catalog(
        tmp_path: Path, apiserver: RunningApiServer, servers: list[ConsulProcess]) -> None:
    leader = eventually(lambda: _one_leader(IPS), timeout=ELECTION, interval=POLL,
                        what="one leader among three servers")
    cc = consul.Consul(host=leader.split(":")[0], port=8500)
    for n in range(3):
        cc.catalog.register("k8s-sync", "127.0.0.1", service={
            "Service": "catalog-production", "ID": f"cat-{n}", "Address": f"127.1.0.{20 + n}",
            "Port": 5000, "Tags": ["k8s"]})
    cc.kv.put("meshproof/run", "r-1")
    index, _ = cc.catalog.services()
    dead = next(p for p in servers if leader.startswith(p.ip + ":"))
    dead.kill()
    alive = [ip for ip in IPS if ip != dead.ip]

    def new_leader() -> str:
        now = _one_leader(alive)
        assert now != leader, now
        return now

    second = eventually(new_leader, timeout=ELECTION, interval=POLL,
                        what="a new leader after the leader was killed")
    cs = consul.Consul(host=second.split(":")[0], port=8500)
    _, entries = cs.catalog.service("catalog-production")
    assert sorted(e["ServiceAddress"] for e in entries) == [
        "127.1.0.20", "127.1.0.21", "127.1.0.22"]
    assert cs.kv.get("meshproof/run")[1]["Value"] == b"r-1"
    new_index, _ = cs.catalog.services()
    assert int(new_index) >= int(index)

    def failed_member() -> None:
        members = {m["Name"]: m["Status"] for m in cs.agent.members()}
        assert members[dead.name] == 4, members
        _, checks = cs.health.node(dead.name)
        assert [c["Status"] for c in checks] == ["critical"]

    eventually(failed_member, timeout=ELECTION, interval=POLL, what="the killed server failed")

    # The pod comes back (same name, same data volume) and follows the new leader.
    ordinal = servers.index(dead)
    servers[ordinal] = start_server(tmp_path, ip=dead.ip, ordinal=ordinal, replicas=3,
                                    api=(apiserver.url, apiserver.token, apiserver.ca_file))
    cs.catalog.register("k8s-sync", "127.0.0.1", service={
        "Service": "catalog-production", "ID": "cat-3", "Address": "127.1.0.23", "Port": 5000})

    def rejoined() -> None:
        assert _one_leader(IPS) == second
        back = consul.Consul(host=dead.ip, port=8500)
        _, found = back.catalog.service("catalog-production")
        assert len(found) == 4
        assert {m["Name"]: m["Status"] for m in back.agent.members()}[dead.name] == 1

    eventually(rejoined, timeout=ELECTION, interval=POLL, what="the restarted server caught up")
