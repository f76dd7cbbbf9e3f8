"""The kind bootstrap is right by construction: its scripts pass shellcheck, `make -n kind-up`
shows every step in order, and the whole plan runs against recording stand-ins for docker,
kind, kubectl, helm and istioctl, making the calls a real bootstrap needs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.cluster_manifests import CLUSTERS_DIR, REPO_ROOT, versions
from tests.support.kind_stubs import write_stubs
from tests.support.pki_checks import openssl_verify

pytestmark = pytest.mark.static

SCRIPTS = CLUSTERS_DIR / "scripts"
PLAN = [
    "check-tools.sh",
    "host-sysctls.sh",
    "create-clusters.sh",
    "metallb.sh",
    "istio-namespace.sh",
    "plugin-ca.sh",
    "istio-install.sh",
    "eastwest-gateway.sh",
    "remote-secrets.sh",
    "cert-manager.sh",
    "consul.sh",
    "prometheus.sh",
    "workloads.sh",
    "wait-ready.sh",
    "write-target.sh",
]
MAKE = shutil.which("make")
SHELLCHECK = shutil.which("shellcheck")
# Bound on any one subprocess here; the stubbed full bootstrap takes about a second.
RUN_TIMEOUT = 60


def _run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


def _scripts() -> list[Path]:
    return sorted(SCRIPTS.glob("*.sh"))


@pytest.mark.skipif(
    SHELLCHECK is None, reason="shellcheck not installed (.ci/system-deps installs it)"
)
def test_scripts_pass_shellcheck() -> None:
    res = _run([str(SHELLCHECK), "-x", "-S", "style", *map(str, _scripts())])
    assert res.returncode == 0, res.stdout + res.stderr


def test_scripts_are_strict_bash() -> None:
    for script in _scripts():
        text = script.read_text()
        assert "set -euo pipefail" in text, f"{script.name} lacks set -euo pipefail"
        if script.name != "lib.sh":
            assert text.startswith("#!/usr/bin/env bash\n"), script.name
        res = _run(["bash", "-n", str(script)])
        assert res.returncode == 0, f"{script.name}: {res.stderr}"


@pytest.mark.skipif(MAKE is None, reason="make not installed")
def test_make_n_kind_up_shows_every_step_in_order() -> None:
    res = _run([str(MAKE), "-n", "kind-up", "STAMP="])
    assert res.returncode == 0, res.stderr
    steps = [
        Path(line.split()[1]).name
        for line in res.stdout.splitlines()
        if line.startswith("bash clusters/scripts/")
    ]
    assert steps == PLAN
    # Every step script exists, and every script is a step (or the shared lib / kind-down).
    on_disk = {p.name for p in _scripts()} - {"lib.sh", "kind-down.sh"}
    assert on_disk == set(PLAN)


@pytest.mark.skipif(MAKE is None, reason="make not installed")
def test_make_n_kind_down() -> None:
    res = _run([str(MAKE), "-n", "kind-down"])
    assert res.returncode == 0, res.stderr
    assert "clusters/scripts/kind-down.sh" in res.stdout


def _tool_path(tmp_path: Path, *, stubs: bool) -> str:
    """A PATH with bash and coreutils but none of the real cluster tools (Docker is absent here
    anyway, and a developer's real kind must never be called by a test)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in (
        "bash",
        "dirname",
        "head",
        "cat",
        "grep",
        "sed",
        "tr",
        "mkdir",
        "rm",
        "sleep",
        "basename",
        "env",
        "make",
        "sh",
        "printf",
    ):
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    if stubs:
        write_stubs(bin_dir)
    return str(bin_dir)


def _env(tmp_path: Path, path: str, **extra: str) -> dict[str, str]:
    env = {
        "PATH": path,
        "HOME": str(tmp_path),
        "MESHPROOF_KIND_DIR": str(tmp_path / "kind"),
        "MESHPROOF_PYTHON": sys.executable,
        "STUB_LOG": str(tmp_path / "calls.log"),
        "LANG": "C.UTF-8",
    }
    env.update(extra)
    return env


def test_check_tools_names_each_missing_tool_and_version(tmp_path: Path) -> None:
    env = _env(tmp_path, _tool_path(tmp_path, stubs=False))
    res = _run(["bash", str(SCRIPTS / "check-tools.sh")], env=env)
    assert res.returncode == 2
    missing = [line for line in res.stderr.splitlines() if line.startswith("kind: missing")]
    v = versions()
    assert len(missing) == 5, res.stderr
    for tool, expected in (
        ("docker", "Docker 24+"),
        ("kind", v["KIND_VERSION"]),
        ("kubectl", v["KUBECTL_VERSIONS"]),
        ("helm", v["HELM_VERSIONS"]),
        ("istioctl", v["ISTIO_VERSION"]),
    ):
        assert any(f" {tool} " in m and expected in m for m in missing), (tool, missing)
    assert res.stderr.strip().endswith("run 'make kind-up' again")


def test_check_tools_refuses_another_istioctl_minor(tmp_path: Path) -> None:
    env = _env(tmp_path, _tool_path(tmp_path, stubs=True), STUB_ISTIO_VERSION="1.30.2")
    res = _run(["bash", str(SCRIPTS / "check-tools.sh")], env=env)
    assert res.returncode == 2
    assert "istioctl is not 1.31.x" in res.stderr


def test_lb_address_ranges_are_disjoint_and_inside_the_kind_network(tmp_path: Path) -> None:
    import ipaddress

    env = _env(tmp_path, _tool_path(tmp_path, stubs=False))
    lib = SCRIPTS / "lib.sh"
    ranges = []
    for index in (0, 1):
        res = _run(
            ["bash", "-c", f'source "{lib}"; lb_address_range 172.18.0.0/16 {index}'], env=env
        )
        assert res.returncode == 0, res.stderr
        first, last = (ipaddress.ip_address(a) for a in res.stdout.strip().split("-"))
        assert first in ipaddress.ip_network("172.18.0.0/16") and int(last) - int(first) == 49
        ranges.append((first, last))
    assert ranges[0][1] < ranges[1][0]
    res = _run(["bash", "-c", f'source "{lib}"; lb_address_range 172.18.0.0/24 0'], env=env)
    assert res.returncode != 0 and "cannot carve" in res.stderr


@pytest.mark.skipif(MAKE is None, reason="make not installed")
def test_kind_up_runs_the_whole_plan_against_stubs(tmp_path: Path) -> None:
    env = _env(tmp_path, _tool_path(tmp_path, stubs=True), MESHPROOF_KIND_ALLOW_FAULTS="")
    res = _run(["make", "--no-print-directory", "kind-up", "STAMP="], env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    kind_dir = tmp_path / "kind"

    def index(prefix: str) -> int:
        hits = [i for i, c in enumerate(calls) if c.startswith(prefix)]
        assert hits, f"no call starting with {prefix!r} in:\n" + "\n".join(calls)
        return hits[0]

    # The order of the plan, as the calls show it.
    order = [
        "kind create cluster --config " + str(CLUSTERS_DIR / "kind/aws-eks.yaml"),
        "kubectl config rename-context kind-aws-eks aws-eks",
        "kind create cluster --config " + str(CLUSTERS_DIR / "kind/gcp-gke.yaml"),
        "kubectl config rename-context kind-gcp-gke gcp-gke",
        f"kubectl --context aws-eks apply -f {versions()['METALLB_MANIFEST_URL']}",
        "kubectl --context aws-eks apply -f "
        + str(CLUSTERS_DIR / "istio/istio-system-aws-eks.yaml"),
        "kubectl --context aws-eks -n istio-system create secret generic cacerts",
        "istioctl install -y --context aws-eks -f " + str(CLUSTERS_DIR / "istio/aws-eks.yaml"),
        "istioctl install -y --context gcp-gke -f " + str(CLUSTERS_DIR / "istio/gcp-gke.yaml"),
        "istioctl install -y --context aws-eks -f "
        + str(CLUSTERS_DIR / "istio/eastwest-gateway-aws-eks.yaml"),
        "kubectl --context aws-eks apply -f "
        + str(CLUSTERS_DIR / "istio/cross-network-gateway.yaml"),
        "istioctl create-remote-secret --context aws-eks --name aws-eks --server https://172.18.0.2:6443",
        "istioctl create-remote-secret --context gcp-gke --name gcp-gke --server https://172.18.0.3:6443",
        f"kubectl --context aws-eks apply -f {versions()['CERT_MANAGER_MANIFEST_URL']}",
        "helm upgrade --install consul hashicorp/consul --version "
        + versions()["CONSUL_CHART_VERSION"],
        "kubectl --context aws-eks apply -f " + str(CLUSTERS_DIR / "prometheus/prometheus.yaml"),
        "kubectl --context aws-eks apply -f " + str(CLUSTERS_DIR / "mesh/namespaces.yaml"),
        "kubectl --context gcp-gke apply -R -f " + str(CLUSTERS_DIR / "workloads/gcp-gke/"),
        "kubectl --context gcp-gke -n sample wait --for=condition=Available deploy --all",
    ]
    positions = [index(p) for p in order]
    assert positions == sorted(positions), "calls out of order:\n" + "\n".join(calls)

    # The remote secret of each cluster is applied to the other one. The two ends of a pipe
    # log in either order, so look inside the window of that cluster's iteration.
    inspects = [i for i, c in enumerate(calls) if c.startswith("docker inspect -f")]
    assert len(inspects) == 2, inspects
    start, end = inspects
    assert "kubectl --context gcp-gke apply -f -" in calls[start:end]
    assert "kubectl --context aws-eks apply -f -" not in calls[start:end]

    # The secret cacerts is made from the CA files meshproof.pki wrote, and they verify.
    secret = calls[index("kubectl --context gcp-gke -n istio-system create secret generic cacerts")]
    for name in ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"):
        assert f"--from-file={name}={kind_dir}/ca/gcp-gke/{name}" in secret
    res = openssl_verify(kind_dir / "ca/root-cert.pem", kind_dir / "ca/gcp-gke/ca-cert.pem")
    assert res.returncode == 0, res.stdout + res.stderr

    # MetalLB got one range per cluster, from the end of the kind network.
    pools = [
        yaml.safe_load_all((kind_dir / f"metallb-pool-{c}.yaml").read_text())
        for c in ("aws-eks", "gcp-gke")
    ]
    addresses = [next(iter(p))["spec"]["addresses"] for p in pools]
    assert addresses == [["172.18.255.55-172.18.255.104"], ["172.18.255.105-172.18.255.154"]]

    # Consul's datacenter is the cluster's name; every wait is bounded.
    assert "--set global.datacenter=gcp-gke" in calls[index("helm upgrade --install consul") + 1]
    for call in calls:
        if " wait " in f" {call} " or "rollout status" in call:
            assert "--timeout=" in call, call

    # The target file the suite is pointed at.
    target = yaml.safe_load((kind_dir / "target.yaml").read_text())
    assert [c["context"] for c in target["clusters"]] == ["aws-eks", "gcp-gke"]
    assert [c["prometheus"]["url"] for c in target["clusters"]] == [
        "http://127.0.0.1:19090",
        "http://127.0.0.1:29090",
    ]
    assert {c["kubeconfig"] for c in target["clusters"]} == {str(kind_dir / "kubeconfig")}
    assert target["destructive"]["allowed"] == {"aws-eks": [], "gcp-gke": []}


def test_the_kind_target_loads_as_a_target(tmp_path: Path) -> None:
    """The file kind-up writes is one `meshproof run --target` accepts."""
    target_module = pytest.importorskip("meshproof.target")
    env = _env(tmp_path, _tool_path(tmp_path, stubs=False))
    kind_dir = tmp_path / "kind"
    kind_dir.mkdir()
    # What `kind create cluster` + the context renames leave in the kubeconfig.
    contexts = [
        {"name": c, "context": {"cluster": f"kind-{c}", "user": f"kind-{c}"}}
        for c in ("aws-eks", "gcp-gke")
    ]
    (kind_dir / "kubeconfig").write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "contexts": contexts})
    )
    res = _run(["bash", str(SCRIPTS / "write-target.sh")], env=env)
    assert res.returncode == 0, res.stderr
    target = target_module.load_target(kind_dir / "target.yaml")
    assert target.cluster_names == ("aws-eks", "gcp-gke")
    assert {s.name for s in target.services} == {"helloworld", "catalog", "httpbin", "api-service"}
    assert not target.allows("aws-eks", "anything")


def test_write_target_carries_the_allowed_faults(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        _tool_path(tmp_path, stubs=False),
        MESHPROOF_KIND_ALLOW_FAULTS="kill-istiod, eastwest-down",
    )
    (tmp_path / "kind").mkdir()
    res = _run(["bash", str(SCRIPTS / "write-target.sh")], env=env)
    assert res.returncode == 0, res.stderr
    target = yaml.safe_load((tmp_path / "kind" / "target.yaml").read_text())
    assert target["destructive"]["allowed"]["gcp-gke"] == ["kill-istiod", "eastwest-down"]
    assert [c["network"] for c in target["clusters"]] == ["network1", "network2"]


def test_host_sysctls_only_reports(tmp_path: Path) -> None:
    env = _env(tmp_path, _tool_path(tmp_path, stubs=False))
    res = _run(["bash", str(SCRIPTS / "host-sysctls.sh")], env=env)
    assert res.returncode == 0, res.stderr
    assert "fs.inotify.max_user_watches" in res.stdout


def test_kind_down_deletes_both_clusters_and_the_state(tmp_path: Path) -> None:
    env = _env(tmp_path, _tool_path(tmp_path, stubs=True))
    (tmp_path / "kind").mkdir()
    (tmp_path / "kind" / "target.yaml").write_text("name: kind\n")
    res = _run(["bash", str(SCRIPTS / "kind-down.sh")], env=env)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "kind").exists()
    assert os.path.exists(tmp_path / "calls.log")
