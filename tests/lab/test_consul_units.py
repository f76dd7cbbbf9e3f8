"""Pure parts of the lab's Consul: the chart's rendered objects, reading flags out of the chart's
shell commands, catalog-sync registrations, and the catalog state's index rules."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from meshproof.lab.consul.args import parse_flags, program_args
from meshproof.lab.consul.install import render
from meshproof.lab.consul.registrations import SyncOptions, desired_registrations, service_id
from meshproof.lab.consul.state import CatalogState, RegistrationError
from meshproof.lab.consul.sync import options_from
from meshproof.lab.images import load_registrations, lookup
from tests.support.consul_lab import VALUES

pytestmark = pytest.mark.lab


def _objects(cluster: str = "aws-eks") -> dict[tuple[str, str], dict[str, Any]]:
    values = yaml.safe_load(VALUES.read_text())
    return {(o["kind"], o["metadata"]["name"]): o for o in render(values, cluster=cluster)}


def test_render_makes_the_chart_objects_the_lab_needs() -> None:
    objs = _objects()
    assert set(objs) == {
        ("Namespace", "consul"), ("ServiceAccount", "consul-server"),
        ("ConfigMap", "consul-server-config"), ("Service", "consul-server"),
        ("StatefulSet", "consul-server"), ("ServiceAccount", "consul-sync-catalog"),
        ("ClusterRole", "consul-sync-catalog"), ("ClusterRoleBinding", "consul-sync-catalog"),
        ("Deployment", "consul-sync-catalog")}
    sts = objs[("StatefulSet", "consul-server")]
    assert sts["metadata"]["labels"] == {"app": "consul", "chart": "consul-helm",
                                         "heritage": "Helm", "release": "consul",
                                         "component": "server"}
    pod = sts["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "hashicorp/consul:1.22.7"
    assert sts["spec"]["replicas"] == 1 and sts["spec"]["serviceName"] == "consul-server"
    svc = objs[("Service", "consul-server")]["spec"]
    assert svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"] is True
    assert {p["name"]: p["port"] for p in svc["ports"]}["http"] == 8500
    sync = objs[("Deployment", "consul-sync-catalog")]["spec"]["template"]["spec"]
    assert sync["containers"][0]["image"] == "hashicorp/consul-k8s-control-plane:1.9.11"
    assert sync["serviceAccountName"] == "consul-sync-catalog"


def test_rendered_objects_validate_against_the_kubernetes_schemas() -> None:
    for obj in _objects().values():
        kubernetes_validate.validate(obj, "1.36.0", strict=True)  # kindest/node v1.36


def test_each_cluster_is_its_own_datacenter() -> None:
    for cluster in ("aws-eks", "gcp-gke"):
        sts = _objects(cluster)[("StatefulSet", "consul-server")]
        script = sts["spec"]["template"]["spec"]["containers"][0]["command"][2]
        assert f"-datacenter={cluster} " in script
    values = yaml.safe_load(VALUES.read_text())
    kept = {o["kind"]: o for o in render(values, cluster="aws-eks", datacenter_layout="values")}
    assert "-datacenter=dc1 " in kept["StatefulSet"]["spec"]["template"]["spec"][
        "containers"][0]["command"][2]
    with pytest.raises(ValueError, match="aws-eks"):
        render(values, cluster="aws-eks", datacenter_layout="federated")  # type: ignore[arg-type]


def test_server_flags_come_out_of_the_charts_shell_script() -> None:
    sts = _objects()[("StatefulSet", "consul-server")]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {"ADVERTISE_IP": "127.1.0.9", "NAMESPACE": "consul"}
    flags = parse_flags(program_args(container["command"], env, ("consul", "agent")))
    assert flags["advertise"] == ["127.1.0.9"]
    assert flags["datacenter"] == ["aws-eks"] and flags["bootstrap-expect"] == ["1"]
    assert flags["retry-join"] == ["consul-server-0.consul-server.consul.svc:8301"]
    assert flags["server"] == ["true"] and flags["data-dir"] == ["/consul/data"]


def test_sync_flags_follow_the_values_file() -> None:
    deploy = _objects()[("Deployment", "consul-sync-catalog")]
    command = deploy["spec"]["template"]["spec"]["containers"][0]["command"]
    flags = parse_flags(program_args(command, {"NAMESPACE": "consul"},
                                     ("consul-k8s-control-plane", "sync-catalog")))
    opts, interval = options_from(flags)
    assert opts.add_namespace_suffix and opts.sync_clusterip and opts.default_sync
    assert opts.allow_namespaces == {"*"}
    assert {"kube-system", "istio-system", "consul"} <= opts.deny_namespaces
    assert (opts.node_name, opts.k8s_tag, interval) == ("k8s-sync", "k8s", 5.0)
    assert flags["to-k8s"] == ["false"]


def test_images_map_to_the_consul_programs() -> None:
    load_registrations()
    server = lookup("docker.io/hashicorp/consul:1.22.7")
    sync = lookup("hashicorp/consul-k8s-control-plane:1.9.11")
    assert server is not None and server.entry == "meshproof.lab.consul.server:run"
    assert sync is not None and sync.entry == "meshproof.lab.consul.sync:run"
    assert "consul" in dict(server.aliases) and "curl" in server.commands


def _svc(name: str, ns: str, kind: str = "ClusterIP", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "annotations": extra.pop("ann", {})},
            "spec": {"type": kind, "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                     **extra.pop("spec", {})}, **extra}


def _eps(name: str, ns: str, *eps: tuple[str, bool]) -> dict[str, Any]:
    return {"metadata": {"name": f"{name}-x", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip, ready in eps]}


def test_registrations_per_endpoint_with_readiness_and_ports() -> None:
    opts = SyncOptions(add_namespace_suffix=True, deny_namespaces={"kube-system"})
    regs = desired_registrations(
        [_svc("web", "sample"), _svc("dns", "kube-system")],
        [_eps("web", "sample", ("127.2.0.5", True), ("127.2.0.6", False)),
         _eps("dns", "kube-system", ("127.2.0.7", True))], opts)
    assert [(r["Service"]["Service"], r["Service"]["Address"], r["Service"]["Port"],
             r["Service"]["Ports"], r["Check"]["Status"]) for r in regs] == [
        ("web-sample", "127.2.0.5", 0, [{"Name": "http", "Port": 8080, "Default": True}],
         "passing"),
        ("web-sample", "127.2.0.6", 0, [{"Name": "http", "Port": 8080, "Default": True}],
         "critical")]
    assert regs[0]["Service"]["ID"] == service_id("web-sample", "127.2.0.5")
    assert regs[0]["Service"]["ID"].startswith("web-sample-") and len(
        regs[0]["Service"]["ID"]) == len("web-sample-") + 12
    assert regs[0]["Node"] == "k8s-sync" and regs[0]["Address"] == "127.0.0.1"
    assert regs[0]["Service"]["Meta"]["port-http"] == "80"


def test_registrations_for_load_balancers_external_ips_and_opt_out() -> None:
    opts = SyncOptions()
    lb = _svc("gw", "istio-ingress", "LoadBalancer",
              status={"loadBalancer": {"ingress": [{"ip": "127.11.0.9"}]}})
    ext = _svc("legacy", "prod", spec={"externalIPs": ["10.0.0.1"]})
    off = _svc("quiet", "prod", ann={"consul.hashicorp.com/service-sync": "false"})
    regs = desired_registrations([lb, ext, off], [_eps("quiet", "prod", ("127.1.0.1", True))],
                                 opts)
    assert sorted((r["Service"]["Service"], r["Service"]["Address"], r["Service"]["Port"],
                   r["Service"]["Ports"][0]["Port"]) for r in regs) == [
        ("gw", "127.11.0.9", 0, 80), ("legacy", "10.0.0.1", 0, 80)]
    assert "Check" not in regs[0]


def _two_port_service(annotation: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    svc = _svc("web", "sample", ann={"consul.hashicorp.com/service-port": annotation}
               if annotation else {})
    svc["spec"]["ports"] = [{"name": "http", "port": 80, "targetPort": 8080},
                            {"name": "", "port": 9090, "targetPort": 9091}]
    eps = _eps("web", "sample", ("127.2.0.5", True))
    eps["ports"] = [{"name": "http", "port": 8080}, {"name": "", "port": 9091}]
    return svc, eps


def test_registrations_carry_port_zero_and_every_port_with_the_default_flagged() -> None:
    """consul-k8s ≥ 1.9 (hashicorp/consul-k8s ``control-plane/catalog/to-consul/resource.go``,
    PR #4778 "sync multiple ports"; ``resource_test.go`` checks the same shapes): a ClusterIP
    instance has ``Port: 0`` and ``Ports`` from its EndpointSlice, an unnamed port is
    ``port<N>`` (``getPortName``), the first port is the default unless the
    ``service-port`` annotation names one (moved to the front) or gives a number (an extra
    ``default`` entry in front)."""
    svc, eps = _two_port_service()
    (reg,) = desired_registrations([svc], [eps], SyncOptions())
    assert reg["Service"]["Port"] == 0
    assert reg["Service"]["Ports"] == [{"Name": "http", "Port": 8080, "Default": True},
                                       {"Name": "port2", "Port": 9091, "Default": False}]
    assert reg["Service"]["Meta"]["port-http"] == "80"
    svc, eps = _two_port_service("metrics")
    svc["spec"]["ports"][1]["name"] = eps["ports"][1]["name"] = "metrics"
    (reg,) = desired_registrations([svc], [eps], SyncOptions())
    assert reg["Service"]["Ports"] == [{"Name": "metrics", "Port": 9091, "Default": True},
                                       {"Name": "http", "Port": 8080, "Default": False}]
    svc, eps = _two_port_service("7000")
    (reg,) = desired_registrations([svc], [eps], SyncOptions())
    assert reg["Service"]["Ports"] == [{"Name": "default", "Port": 7000, "Default": True},
                                       {"Name": "http", "Port": 8080, "Default": False},
                                       {"Name": "port2", "Port": 9091, "Default": False}]
    lb, _ = _two_port_service()
    lb["spec"]["type"] = "LoadBalancer"
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "127.11.0.9"}]}}
    (reg,) = desired_registrations([lb], [], SyncOptions())
    assert (reg["Service"]["Port"], reg["Service"]["Ports"]) == (0, [
        {"Name": "http", "Port": 80, "Default": True},
        {"Name": "port2", "Port": 9090, "Default": False}])


def test_the_catalog_keeps_ports_and_answers_them_as_consul_does() -> None:
    """Consul ≥ 1.22 keeps a service's ``Ports`` and answers them on the agent-service shape
    (``/v1/health/service``, ``/v1/catalog/node``) and as ``ServicePorts`` on
    ``/v1/catalog/service`` (the JSON hashicorp/consul issue #23815 shows)."""
    state = CatalogState(datacenter="dc1")
    svc, eps = _two_port_service()
    (reg,) = desired_registrations([svc], [eps], SyncOptions())
    assert state.register(reg)
    assert not state.register(reg)
    ports = [{"Name": "http", "Port": 8080, "Default": True},
             {"Name": "port2", "Port": 9091, "Default": False}]
    (entry,) = state.health_service("web")
    assert (entry["Service"]["Port"], entry["Service"]["Ports"]) == (0, ports)
    (node,) = state.service_nodes("web")
    assert (node["ServicePort"], node["ServicePorts"]) == (0, ports)
    assert state.register({"node": "n1", "address": "127.0.0.9", "service": {
        "service": "plain", "ports": [{"name": "http", "port": 80, "default": True}]}})
    assert state.health_service("plain")[0]["Service"]["Ports"] == [
        {"Name": "http", "Port": 80, "Default": True}]
    state.register({"Node": "n1", "Address": "127.0.0.9", "Service": {"Service": "old",
                                                                      "Port": 81}})
    assert "Ports" not in state.health_service("old")[0]["Service"]


def test_state_indexes_move_only_on_change() -> None:
    state = CatalogState("aws-eks")
    reg = {"Node": "k8s-sync", "Address": "127.0.0.1", "SkipNodeUpdate": True,
           "Service": {"ID": "a-1", "Service": "a", "Address": "127.1.0.2", "Port": 80}}
    assert state.register(reg)
    index = state.index
    assert not state.register(reg)
    assert state.index == index
    assert state.register({**reg, "service": {"id": "a-1", "service": "a",
                                              "address": "127.1.0.3", "port": 80}})
    entry = state.service_nodes("a")[0]
    assert entry["ServiceAddress"] == "127.1.0.3"
    assert entry["CreateIndex"] < entry["ModifyIndex"] == state.index
    restored = CatalogState.restore(state.snapshot())
    assert restored.service_nodes("a") == state.service_nodes("a")
    with pytest.raises(RegistrationError):
        state.register({"Node": "x", "Address": "1.2.3.4",
                        "Check": {"CheckID": "c", "ServiceID": "missing"}})
    assert "x" not in state.nodes
    assert state.deregister({"Node": "k8s-sync", "ServiceID": "a-1"})
    assert state.services_summary() == {}
