"""The lab as a mesh, through the interfaces a platform engineer uses: kubectl, Prometheus,
Consul, openssl. One lab with the mesh installed serves the module."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshproof.clients.consul import consul_via_apiserver
from meshproof.clients.kube import connect
from meshproof.connections import open_connections
from meshproof.target import load_target
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl, pytest.mark.prometheus]

HELLO = "http://helloworld.sample:5000/hello"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("mesh"), mesh=True) as lab:
        yield lab


def curl(lab: RunningLab, url: str, *, context: str = "aws-eks", namespace: str = "sample",
         count: int = 1) -> list[str]:
    # Shell builtins only: the curl image's commands are curl and a shell's basics.
    script = f'i=0; while [ $i -lt {count} ]; do curl -s -m 5 {url}; echo; i=$((i+1)); done'
    out = lab.kubectl("exec", "-n", namespace, "deploy/curl", "-c", "curl", "--", "sh", "-c",
                      script, context=context, timeout=120)
    return [line for line in out.stdout.splitlines() if line.strip()]


def versions(lines: list[str]) -> Counter[str]:
    return Counter(line.split(",")[0].removeprefix("Hello version: ") for line in lines
                   if line.startswith("Hello version:"))


def test_helloworld_answers_from_both_clusters_and_prometheus_sees_the_crossing(
        mesh: RunningLab) -> None:
    seen = versions(curl(mesh, HELLO, count=20))
    assert set(seen) == {"v1", "v2"}, seen
    prom = open_connections(load_target(mesh.target)).prometheus["aws-eks"]
    assert prom is not None
    query = ('sum(istio_requests_total{reporter="source",source_cluster="aws-eks",'
             'destination_cluster="gcp-gke",destination_app="helloworld"})')
    eventually(lambda: _positive(prom.scalar(query)), timeout=DEFAULT_TIMEOUTS.scrape_settle,
               interval=1.0, what="cross-cluster requests in Prometheus")
    latency = ('histogram_quantile(0.95, sum(rate(istio_request_duration_milliseconds_bucket'
               '{reporter="source",source_cluster="aws-eks",destination_cluster="gcp-gke"}[1m]))'
               ' by (le))')
    eventually(lambda: _not_empty(prom.instant(latency)), timeout=DEFAULT_TIMEOUTS.scrape_settle,
               interval=1.0, what="the runbook's latency query (two scrapes of the buckets)")
    for job in ("istiod", "istio-eastwestgateway"):
        assert prom.instant(f'up{{job="{job}"}} == 1'), f"no up series for job {job}"


def _positive(value: float | None) -> None:
    assert value and value > 0, value


def _not_empty(result: list[object]) -> None:
    assert result, "no result yet"


def test_strict_resets_plaintext_and_mtls_carries_the_callers_identity(
        mesh: RunningLab) -> None:
    ip = mesh.kubectl("get", "svc", "-n", "production", "httpbin", "-o",
                      "jsonpath={.spec.clusterIP}").stdout
    plain = mesh.kubectl("run", "plain-client", "-n", "default", "--image=curlimages/curl:8.16.0",
                         "--restart=Never", "--command", "--", "sleep", "300")
    assert plain.returncode == 0
    mesh.kubectl("wait", "--for=condition=Ready", "pod/plain-client", "-n", "default",
                 "--timeout=60s")
    refused = mesh.kubectl("exec", "-n", "default", "plain-client", "--", "curl", "-s", "-m",
                           "5", f"http://{ip}:8000/headers", check=False)
    assert refused.returncode == 56, (refused.returncode, refused.stdout)
    body = "\n".join(curl(mesh, "http://httpbin.production:8000/headers", namespace="production"))
    xfcc = json.loads(body)["headers"]["X-Forwarded-Client-Cert"][0]
    assert "URI=spiffe://cluster.local/ns/production/sa/curl" in xfcc


def test_a_sidecar_presents_a_chain_to_the_shared_root_with_a_spiffe_san(
        mesh: RunningLab) -> None:
    pod = json.loads(mesh.kubectl("get", "pods", "-n", "sample", "-l", "app=helloworld", "-o",
                                  "json").stdout)["items"][0]
    root = mesh.root / "ca" / "root-cert.pem"
    out = subprocess.run(["openssl", "s_client", "-connect", f"{pod['status']['podIP']}:15006",
                          "-showcerts", "-CAfile", str(root)], input="", capture_output=True,
                         text=True, timeout=30, check=False).stdout
    assert "Verify return code: 0 (ok)" in out, out[-1500:]
    leaf = out.split("-----BEGIN CERTIFICATE-----")[1].split("-----END CERTIFICATE-----")[0]
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], capture_output=True, text=True,
                          input=f"-----BEGIN CERTIFICATE-----{leaf}-----END CERTIFICATE-----\n",
                          check=True).stdout
    assert "URI:spiffe://cluster.local/ns/sample/sa/default" in text


def test_losing_a_clusters_eastwest_gateway_fails_over_and_comes_back(mesh: RunningLab) -> None:
    mesh.kubectl("scale", "deploy/istio-eastwestgateway", "-n", "istio-system", "--replicas=0",
                 context="gcp-gke")
    try:
        def only_local() -> None:
            lines = curl(mesh, HELLO, count=12)
            assert versions(lines) == Counter({"v1": 12}), lines

        eventually(only_local, timeout=DEFAULT_TIMEOUTS.eject, interval=1.0,
                   what="aws-eks traffic ejecting the lost gateway")
    finally:
        mesh.kubectl("scale", "deploy/istio-eastwestgateway", "-n", "istio-system",
                     "--replicas=1", context="gcp-gke")

    def crosses_again() -> None:
        assert "v2" in versions(curl(mesh, HELLO, count=12))

    eventually(crosses_again, timeout=DEFAULT_TIMEOUTS.recover, interval=2.0,
               what="cross-cluster traffic after the gateway returns")


def test_traffic_keeps_flowing_while_istiod_is_down(mesh: RunningLab) -> None:
    mesh.kubectl("scale", "deploy/istiod", "-n", "istio-system", "--replicas=0")
    try:
        mesh.kubectl("wait", "--for=delete", "pod", "-l", "app=istiod", "-n", "istio-system",
                     "--timeout=60s")
        lines = curl(mesh, HELLO, count=10)
        assert sum(versions(lines).values()) == 10, lines
    finally:
        mesh.kubectl("scale", "deploy/istiod", "-n", "istio-system", "--replicas=1")
        mesh.kubectl("rollout", "status", "deploy/istiod", "-n", "istio-system",
                     "--timeout=120s")


def test_consul_lists_both_clusters_services_with_pod_addresses(mesh: RunningLab) -> None:
    for context, prefix in (("aws-eks", "127.1."), ("gcp-gke", "127.2.")):
        api = connect(context, context=context, kubeconfig=mesh.kubeconfig, timeout=15)
        client = consul_via_apiserver(api, namespace="consul", service="consul-server",
                                      port=8500)

        def registered(client=client, prefix=prefix) -> None:  # type: ignore[no-untyped-def]
            _, entries = client.health.service("helloworld-sample", passing=True)
            addresses = [e["Service"]["Address"] for e in entries]
            assert addresses and all(a.startswith(prefix) for a in addresses), addresses

        eventually(registered, timeout=DEFAULT_TIMEOUTS.discovery_convergence, interval=1.0,
                   what=f"helloworld-sample in Consul of {context}")
    members = mesh.kubectl("exec", "-n", "consul", "consul-server-0", "--", "consul", "members")
    assert members.stdout.splitlines()[0].split()[:4] == ["Node", "Address", "Status", "Type"]


def test_certificates_show_their_expiry(mesh: RunningLab) -> None:
    certs = json.loads(mesh.kubectl("get", "certificates", "-n", "istio-system", "-o",
                                    "json").stdout)["items"]
    assert [c["metadata"]["name"] for c in certs] == ["tls-cert"]
    assert certs[0]["status"]["notAfter"]


def test_break_switches_change_the_mesh_and_heal_restores_it(mesh: RunningLab,
                                                             tmp_path: Path) -> None:
    from tests.support.lab import lab_command

    def mode() -> str:
        return mesh.kubectl("get", "peerauthentication", "default", "-n", "production", "-o",
                            "jsonpath={.spec.mtls.mode}").stdout

    assert lab_command(mesh.root, "break", "mtls-permissive").returncode == 0
    assert mode() == "PERMISSIVE"
    assert lab_command(mesh.root, "heal", "mtls-permissive").returncode == 0
    assert mode() == "STRICT"


def test_an_injected_pod_runs_its_proxy_as_a_native_sidecar_that_drains_on_delete(
        mesh: RunningLab) -> None:
    """Current Istio on a 1.33+ kubelet: ``istio-proxy`` is an init container with
    ``restartPolicy: Always``, READY counts it (``2/2``), and its preStop hook
    ``pilot-agent request --debug-port=15020 POST drain`` reaches pilot-agent's ``/drain``
    (istio/istio ``injection-template.yaml`` ``$nativeSidecar``;
    ``pilot/cmd/pilot-agent/status/server.go`` ``handleDrain``): Envoy's admin ``/ready``
    then says DRAINING, and deleting the pod records no FailedPreStopHook."""
    ns = mesh.namespace("native")
    mesh.kubectl("label", "namespace", ns, "istio-injection=enabled")
    mesh.apply("""\
apiVersion: v1
kind: Pod
metadata: {name: app, labels: {app: native-app}}
spec:
  containers: [{name: app, image: busybox, command: [sleep, "3600"]}]
""", namespace=ns)
    mesh.kubectl("wait", "--for=condition=Ready", "pod/app", "-n", ns, "--timeout=60s")
    pod = json.loads(mesh.kubectl("get", "pod", "app", "-n", ns, "-o", "json").stdout)
    assert [c["name"] for c in pod["spec"]["containers"]] == ["app"]
    assert [(c["name"], c.get("restartPolicy")) for c in pod["spec"]["initContainers"]] == [
        ("istio-init", None), ("istio-proxy", "Always")]
    row = mesh.kubectl("get", "pods", "-n", ns, "--no-headers").stdout.split()
    assert row[1:3] == ["2/2", "Running"], row
    ready = mesh.kubectl("exec", "app", "-n", ns, "-c", "istio-proxy", "--", "pilot-agent",
                         "request", "GET", "ready", check=False)
    assert ready.stdout.strip() == "LIVE", ready
    mesh.kubectl("exec", "app", "-n", ns, "-c", "istio-proxy", "--", "pilot-agent", "request",
                 "--debug-port=15020", "POST", "drain")
    draining = mesh.kubectl("exec", "app", "-n", ns, "-c", "istio-proxy", "--", "pilot-agent",
                            "request", "GET", "ready", check=False)
    assert draining.stdout.strip() == "DRAINING", draining
    mesh.kubectl("delete", "pod", "app", "-n", ns, "--timeout=60s")
    events = json.loads(mesh.kubectl("get", "events", "-n", ns, "-o", "json").stdout)
    reasons = {e["reason"] for e in events["items"]}
    assert "Killing" in reasons and "FailedPreStopHook" not in reasons, reasons
