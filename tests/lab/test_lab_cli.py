"""`meshproof lab up / status / down / break` as a user runs them."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.lab import lab_command, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl]


def _lab_processes(root: Path) -> list[str]:
    """The daemon and pod processes of the lab in ``root`` (pods run with cwd in it)."""
    out = subprocess.run(
        ["pgrep", "-af", "meshproof.lab"], check=False, capture_output=True, text=True
    )
    found = []
    for line in out.stdout.splitlines():
        pid = line.split()[0]
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if str(root) in line or cwd.startswith(str(root)):
            found.append(line)
    return found


def test_up_status_down_leaves_nothing_running(tmp_path: Path) -> None:
    with running_lab(tmp_path) as lab:
        again = lab_command(lab.root, "up")
        assert again.returncode == 0 and "already up" in again.stdout

        status = lab_command(lab.root, "status", "--json")
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["version"] == 1 and doc["up"] is True
        assert [c["name"] for c in doc["clusters"]] == ["aws-eks", "gcp-gke"]
        assert all(c["nodes"] == {"ready": 1, "total": 1} for c in doc["clusters"])

        text = lab_command(lab.root, "status").stdout
        assert text.splitlines()[0].startswith("lab: aws-eks") and "nodes 1/1 Ready" in text

        kubeconfig = yaml.safe_load(lab.kubeconfig.read_text())
        assert kubeconfig["current-context"] == "aws-eks"
        assert {c["name"] for c in kubeconfig["contexts"]} == {"aws-eks", "gcp-gke"}
        tokens = {u["user"]["token"] for u in kubeconfig["users"]}
        assert len(tokens) == 2

        lab.apply(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: sleeper}\nspec:\n"
            "  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n"
        )
        lab.kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=60s")
        assert _lab_processes(lab.root)
    assert lab_command(lab.root, "status").returncode == 2
    assert not (lab.root / "lab.json").exists()
    assert _lab_processes(lab.root) == []


def test_contexts_work_with_kubectl_and_reject_a_wrong_token(tmp_path: Path) -> None:
    with running_lab(tmp_path) as lab:
        for context, region in (("aws-eks", "us-east-1"), ("gcp-gke", "us-central1")):
            node = json.loads(lab.kubectl("get", "nodes", "-o", "json", context=context).stdout)[
                "items"
            ][0]
            labels = node["metadata"]["labels"]
            assert node["metadata"]["name"] == f"{context}-control-plane"
            assert labels["topology.kubernetes.io/region"] == region
            assert labels["kubernetes.io/hostname"] == node["metadata"]["name"]
            ns = lab.kubectl("get", "ns", "-o", "name", context=context).stdout.split()
            assert {
                "namespace/default",
                "namespace/kube-system",
                "namespace/kube-public",
                "namespace/kube-node-lease",
            } <= set(ns)
        doc = yaml.safe_load(lab.kubeconfig.read_text())
        cluster = doc["clusters"][0]["cluster"]
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        req = urllib.request.Request(
            cluster["server"] + "/api/v1/nodes", headers={"Authorization": "Bearer wrong"}
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, context=ssl.create_default_context(cadata=ca), timeout=10)
        assert err.value.code == 401
        target = yaml.safe_load(lab.target.read_text())
        assert target["name"] == "lab"
        assert [c["context"] for c in target["clusters"]] == ["aws-eks", "gcp-gke"]


def test_commands_when_the_lab_is_not_up(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    root.mkdir()
    status = lab_command(root, "status")
    assert status.returncode == 2 and status.stdout.startswith("lab: not up")
    assert lab_command(root, "down").returncode == 0
    broke = lab_command(root, "break", "no-such-switch")
    assert broke.returncode == 2
    assert "unknown switch no-such-switch, known:" in broke.stderr
    forgot = lab_command(root, "forget-metrics")
    assert forgot.returncode == 2
    assert forgot.stderr == ("lab: error: cannot forget metrics: the lab is not up "
                             "(meshproof lab up)\n")


def test_up_names_the_log_when_the_daemon_cannot_start(tmp_path: Path) -> None:
    root = tmp_path / "lab"
    (root / "kubeconfig").mkdir(parents=True)  # the daemon cannot write its kubeconfig
    up = lab_command(root, "up")
    assert up.returncode == 2
    assert up.stderr.startswith("lab: error: lab up failed: the lab daemon exited")
    assert str(root / "logs" / "supervisor.log") in up.stderr
    assert "Traceback" not in up.stderr and _lab_processes(root) == []
