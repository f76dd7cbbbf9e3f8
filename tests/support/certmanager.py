"""The lab's cert-manager controller as a real process against a test API server.

``running_certmanager(tmp)`` starts an API server (``tests.support.kube_apiserver``),
applies ``meshproof.lab.certmanager.install.render()`` and the mesh's
``clusters/cert-manager/*.yaml`` with the official client, and launches the
controller the way the kubelet launches a Python lab program
(``python -m meshproof.lab.images.launch ctx.json``), pointed at the server with
its in-cluster configuration (a service-account token and ``ca.crt`` mounted at
``/var/run/secrets/kubernetes.io/serviceaccount``, ``$KUBERNETES_SERVICE_HOST`` /
``_PORT``) or ``--kubeconfig``, and sped up with ``--lab-time-scale``.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from meshproof.lab.certmanager import install
from meshproof.lab.certmanager.kubeapi import SA_DIR
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually
from tests.support.cluster_manifests import CLUSTERS_DIR
from tests.support.kube_apiserver import RunningApiServer, running_apiserver

__all__ = ["CertManager", "free_pod_ip", "metric_samples", "running_certmanager"]

GROUP, VERSION = "cert-manager.io", "v1"
_SAMPLE = re.compile(r'^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$')


def free_pod_ip() -> str:
    """A loopback address whose ports 9402 and 9403 are free (the controller binds both)."""
    for last in range(10, 250):
        ip = f"127.0.93.{last}"
        try:
            for port in (9402, 9403):
                with socket.socket() as s:
                    s.bind((ip, port))
        except OSError:
            continue
        return ip
    raise RuntimeError("no free 127.0.93.x address for the cert-manager test pod")


def metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparsable exposition line {line!r}"
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out.append((m.group(1), labels, float(m.group(3))))
    return out


@dataclass
class CertManager:
    """A running controller, its API server and clients."""

    api: RunningApiServer
    client: kubernetes.client.ApiClient
    pod_ip: str
    break_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.client)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.client)

    def certificate(self, namespace: str, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace,
                                                        "certificates", name)

    def cluster_issuer(self, name: str) -> dict[str, Any]:
        return self.custom.get_cluster_custom_object(GROUP, VERSION, "clusterissuers", name)

    def apply(self, obj: dict[str, Any]) -> None:
        kind, meta = obj["kind"], obj["metadata"]
        plural = {"Certificate": "certificates", "ClusterIssuer": "clusterissuers",
                  "Issuer": "issuers"}.get(kind)
        if plural is None:
            kubernetes.utils.create_from_dict(self.client, obj)
        elif kind == "ClusterIssuer":
            self.custom.create_cluster_custom_object(GROUP, VERSION, plural, obj)
        else:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, meta["namespace"],
                                                        plural, obj)

    def metrics(self) -> list[tuple[str, dict[str, str], float]]:
        with urllib.request.urlopen(f"http://{self.pod_ip}:9402/metrics", timeout=5) as reply:
            return metric_samples(reply.read().decode())

    def wait(self, check: Any, what: str) -> Any:
        """``eventually`` with the renewal budget; the controller's log on failure."""
        try:
            return eventually(check, timeout=DEFAULT_TIMEOUTS.cert_renewal,
                              interval=DEFAULT_TIMEOUTS.poll_interval / 5, what=what)
        except Exception:
            sys.stderr.write(self.log.read_text(errors="replace")[-4000:])
            raise


def _mesh_objects() -> list[dict[str, Any]]:
    out = []
    for path in sorted((CLUSTERS_DIR / "cert-manager").glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


@contextmanager
def running_certmanager(tmp: Path, *, time_scale: float,
                        in_cluster: bool = True) -> Iterator[CertManager]:
    """API server + installed cert-manager objects + the controller process."""
    with running_apiserver(tmp) as api:
        client = kubernetes.config.new_client_from_config(config_file=str(api.kubeconfig))
        break_dir = tmp / "breaks"
        pod_ip = free_pod_ip()
        env = {"MESHPROOF_LAB_CERT_BREAK_DIR": str(break_dir)}
        argv = ["--v=2", "--cluster-resource-namespace=cert-manager",
                f"--lab-time-scale={time_scale}"]
        mounts = {}
        if in_cluster:
            sa_dir = tmp / "serviceaccount"
            sa_dir.mkdir()
            (sa_dir / "token").write_text(api.token)
            (sa_dir / "ca.crt").write_bytes(api.ca_file.read_bytes())
            (sa_dir / "namespace").write_text("cert-manager")
            mounts[SA_DIR] = str(sa_dir)
            server = urllib.parse.urlsplit(api.url)
            env.update(KUBERNETES_SERVICE_HOST=str(server.hostname),
                       KUBERNETES_SERVICE_PORT=str(server.port))
        else:
            argv.append(f"--kubeconfig={api.kubeconfig}")
        ctx = {
            "entry": "meshproof.lab.certmanager.program:run",
            "cluster": api.cluster, "namespace": "cert-manager",
            "pod": "cert-manager-6d9f7b8c5d-x2k4q",
            "container": install.render()[-1]["spec"]["template"]["spec"]["containers"][0],
            "argv": argv, "env": env,
            "pod_ip": pod_ip, "host_ip": "127.0.0.1", "pod_dir": str(tmp), "mounts": mounts,
        }
        ctx_file = tmp / "ctx.json"
        ctx_file.write_text(json.dumps(ctx))
        log = tmp / "cert-manager.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "meshproof.lab.images.launch", str(ctx_file)],
                stdout=out, stderr=subprocess.STDOUT)
        running = CertManager(api, client, pod_ip, break_dir, log, process)
        try:
            for obj in install.render():
                running.apply(obj)
            running.apply({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "istio-system"}})
            for obj in _mesh_objects():
                running.apply(obj)
            yield running
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
            client.close()
