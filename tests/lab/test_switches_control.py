"""The control-plane and gateway break switches, seen through kubectl and Prometheus: each
puts the mesh into its failure, and heal brings it back. One mesh lab serves the module;
every test heals what it broke."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from meshproof.clients.prometheus import PromQL
from meshproof.connections import open_connections
from meshproof.lab.sidecar.program import LEAK_BYTES
from meshproof.target import load_target
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually
from tests.support.lab import RunningLab, lab_command, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl, pytest.mark.prometheus]

HELLO = "http://helloworld.sample:5000/hello"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("control"), mesh=True) as lab:
        yield lab


def prometheus(lab: RunningLab, cluster: str) -> PromQL:
    prom = open_connections(load_target(lab.target)).prometheus[cluster]
    assert prom is not None
    return prom


def switch(lab: RunningLab, verb: str, name: str) -> None:
    proc = lab_command(lab.root, verb, name, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def hello_versions(lab: RunningLab, count: int = 20) -> set[str]:
    script = (f'i=0; while [ $i -lt {count} ]; do curl -s -m 5 {HELLO}; echo; i=$((i+1)); '
              'done')
    out = lab.kubectl("exec", "-n", "sample", "deploy/curl", "-c", "curl", "--", "sh", "-c",
                      script, context="aws-eks", timeout=120)
    return {line.split(",")[0].removeprefix("Hello version: ")
            for line in out.stdout.splitlines() if line.startswith("Hello version:")}


def pod(lab: RunningLab, context: str, namespace: str, selector: str) -> dict[str, object]:
    out = lab.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json",
                      context=context)
    items = [p for p in json.loads(out.stdout)["items"]
             if not p["metadata"].get("deletionTimestamp")]
    assert len(items) == 1, [p["metadata"]["name"] for p in items]
    return dict(items[0])


def both_served(lab: RunningLab) -> None:
    """aws-eks reaches helloworld v1 locally and v2 in gcp-gke (after any ejection ends)."""
    eventually(lambda: _equals_set(hello_versions(lab), {"v1", "v2"}),
               timeout=DEFAULT_TIMEOUTS.recover, interval=1.0,
               what="helloworld v1 and v2 both answering aws-eks")


def restarts(p: dict[str, object]) -> int:
    status = p["status"]
    assert isinstance(status, dict)
    return sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])


def has_liveness_probe(p: dict[str, object]) -> bool:
    spec = p["spec"]
    assert isinstance(spec, dict)
    return any("livenessProbe" in c for c in spec["containers"])


@pytest.mark.parametrize(("name", "context", "app", "served"), [
    # Proxies keep their last config while istiod is away: both clusters keep serving.
    ("istiod-flapping", "aws-eks", "istiod", {"v1", "v2"}),
    # v2 is behind gcp-gke's gateway; aws-eks keeps serving its own v1.
    ("eastwest-gateway-flapping", "gcp-gke", "istio-eastwestgateway", {"v1"}),
])
def test_a_flapping_component_crash_loops_drops_scrapes_and_heals(
        mesh: RunningLab, name: str, context: str, app: str, served: set[str]) -> None:
    prom = prometheus(mesh, context)
    up = f'up{{job="kubernetes-pods",app="{app}"}}'
    assert prom.scalar(f"min(min_over_time({up}[15s]))") == 1
    switch(mesh, "break", name)
    try:
        flapping = pod(mesh, context, "istio-system", f"app={app}")
        assert has_liveness_probe(flapping) and restarts(flapping) >= 2
        # A scrape lands in a down phase, and the container keeps being restarted.
        eventually(lambda: _equals(prom.scalar(f"min(min_over_time({up}[30s]))"), 0.0),
                   timeout=DEFAULT_TIMEOUTS.alert_fire, interval=2.0,
                   what=f"a failed scrape of {app} on {context}")
        eventually(lambda: _more(restarts(pod(mesh, context, "istio-system", f"app={app}")),
                                 restarts(flapping)),
                   timeout=DEFAULT_TIMEOUTS.recover, interval=2.0, what=f"{app} restarting")
        assert served <= hello_versions(mesh)
    finally:
        switch(mesh, "heal", name)
    steady = pod(mesh, context, "istio-system", f"app={app}")
    assert not has_liveness_probe(steady) and restarts(steady) == 0
    both_served(mesh)
    if app == "istiod":
        # istioctl proxy-status after the restart: every proxy reconnected and in sync.
        meta = steady["metadata"]
        assert isinstance(meta, dict)
        eventually(lambda: _all_synced(mesh, context, str(meta["name"])),
                   timeout=DEFAULT_TIMEOUTS.proxy_resync, interval=1.0,
                   what="proxies in sync with the new istiod")


def test_a_missing_remote_secret_drops_the_remote_cluster_until_healed(
        mesh: RunningLab) -> None:
    prom = prometheus(mesh, "aws-eks")
    managed = 'max(istiod_managed_clusters{cluster_type="remote"})'
    secrets = ("get", "secrets", "-n", "istio-system", "-l", "istio/multiCluster=true",
               "-o", "name")
    present = mesh.kubectl(*secrets).stdout.split()
    assert present
    switch(mesh, "break", "remote-secret-missing")
    try:
        assert not mesh.kubectl(*secrets).stdout.split()
        eventually(lambda: _equals(prom.scalar(managed), 0.0),
                   timeout=DEFAULT_TIMEOUTS.scrape_settle, interval=1.0,
                   what="istiod managing no remote cluster")
        # aws-eks's sidecars no longer reach gcp-gke's helloworld v2.
        assert hello_versions(mesh) == {"v1"}
    finally:
        switch(mesh, "heal", "remote-secret-missing")
    assert mesh.kubectl(*secrets).stdout.split() == present
    eventually(lambda: _equals(prom.scalar(managed), 1.0),
               timeout=DEFAULT_TIMEOUTS.scrape_settle, interval=1.0,
               what="istiod managing gcp-gke again")
    both_served(mesh)


def test_a_bloated_proxy_holds_its_memory_until_healed(mesh: RunningLab) -> None:
    prom = prometheus(mesh, "gcp-gke")
    name = pod(mesh, "gcp-gke", "sample", "app=helloworld,version=v2")["metadata"]
    assert isinstance(name, dict)
    memory = (f'max(envoy_server_memory_allocated{{job="kubernetes-pods",'
              f'pod="{name["name"]}"}})')
    before = prom.scalar(memory)
    assert before is not None and before < LEAK_BYTES
    switch(mesh, "break", "proxy-bloat")
    try:
        eventually(lambda: _at_least(prom.scalar(memory), LEAK_BYTES),
                   timeout=DEFAULT_TIMEOUTS.scrape_settle, interval=1.0,
                   what="Prometheus seeing the leak")
        assert hello_versions(mesh) == {"v1", "v2"}
    finally:
        switch(mesh, "heal", "proxy-bloat")
    eventually(lambda: _below(prom.scalar(memory), LEAK_BYTES),
               timeout=DEFAULT_TIMEOUTS.scrape_settle, interval=1.0,
               what="Prometheus seeing the memory released")


def _all_synced(lab: RunningLab, context: str, istiod: str) -> None:
    # istiod's debug endpoints answer localhost only (pods/proxy gets 401): exec, as istioctl.
    out = lab.kubectl("exec", "-n", "istio-system", istiod, "-c", "discovery", "--",
                      "pilot-discovery", "request", "GET", "/debug/syncz", context=context)
    rows = json.loads(out.stdout)
    assert len(rows) >= 4, f"{len(rows)} proxies connected"
    stale = [r["proxy"] for r in rows if r["cluster_sent"] != r["cluster_acked"]]
    assert not stale, f"not in sync: {stale}"


def _equals(value: float | None, expected: float) -> None:
    assert value == expected, value


def _equals_set(value: set[str], expected: set[str]) -> None:
    assert value == expected, value


def _more(value: int, than: int) -> None:
    assert value > than, value


def _at_least(value: float | None, bound: float) -> None:
    assert value is not None and value >= bound, value


def _below(value: float | None, bound: float) -> None:
    assert value is not None and value < bound, value
