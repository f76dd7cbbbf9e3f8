"""Start the lab's Consul programs as container processes (through the launcher), for tests.

The containers get the command, env and mounts the rendered chart gives them
(:func:`meshproof.lab.consul.install.render` with ``clusters/consul/values.yaml``),
their service-account directory points at a test API server's token and CA, and
each listens on its own loopback address.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshproof.lab.consul.install import render

__all__ = ["ConsulProcess", "catalog_sync", "chart_objects", "consul_server", "start_process"]

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "clusters" / "consul" / "values.yaml"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def chart_objects(cluster: str = "aws-eks", **overrides: Any) -> list[dict[str, Any]]:
    """The chart's objects for ``cluster`` from the repo's values (``server.replicas`` etc.
    overridable as ``replicas=3``)."""
    values = yaml.safe_load(VALUES.read_text())
    if "replicas" in overrides:
        values["server"]["replicas"] = overrides["replicas"]
        values["server"]["bootstrapExpect"] = overrides["replicas"]
    return render(values, cluster=cluster)


def _container(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    obj = next(o for o in objects if o["kind"] == kind)
    return dict(obj["spec"]["template"]["spec"]["containers"][0])


@dataclass
class ConsulProcess:
    """One launched container process."""

    name: str
    ip: str
    proc: subprocess.Popen[bytes]
    pod_dir: Path
    log: Path

    def kill(self) -> None:
        """SIGKILL, as a deleted pod's container gets at the end."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_process(tmp: Path, *, name: str, ip: str, namespace: str, entry: str,
                  container: dict[str, Any], env: dict[str, str], mounts: dict[str, str],
                  cluster: str = "aws-eks") -> ConsulProcess:
    pod_dir = tmp / "pods" / name
    (pod_dir / "ctx").mkdir(parents=True, exist_ok=True)
    log = pod_dir / "container.log"
    ctx = {"entry": entry, "cluster": cluster, "namespace": namespace, "pod": name,
           "container": container, "argv": list(container.get("command") or []),
           "env": env, "pod_ip": ip, "host_ip": "127.0.0.1", "pod_dir": str(pod_dir),
           "mounts": mounts}
    ctx_file = pod_dir / "ctx" / "ctx.json"
    ctx_file.write_text(json.dumps(ctx))
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "meshproof.lab.images.launch",
                                 str(ctx_file)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    return ConsulProcess(name, ip, proc, pod_dir, log)


def _sa_dir(tmp: Path, token: str, ca_file: Path | None) -> str:
    sa = tmp / "sa"
    sa.mkdir(parents=True, exist_ok=True)
    (sa / "token").write_text(token)
    if ca_file is not None:
        (sa / "ca.crt").write_bytes(ca_file.read_bytes())
    (sa / "namespace").write_text("consul")
    return str(sa)


def wait_http(url: str, proc: ConsulProcess, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()}") from exc
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer: {proc.log.read_text()}") from exc
            time.sleep(0.05)


@contextmanager
def consul_server(tmp: Path, *, ip: str, ordinal: int = 0, replicas: int = 1,
                  peers: list[str] | None = None, cluster: str = "aws-eks",
                  api: tuple[str, str, Path | None] | None = None) -> Iterator[ConsulProcess]:
    """A ``consul-server-<ordinal>`` container; ``peers`` replaces the chart's ``-retry-join``
    names with IPs (no API needed); ``api`` = (url, token, ca file) for the SA mount."""
    proc = start_server(tmp, ip=ip, ordinal=ordinal, replicas=replicas, peers=peers,
                        cluster=cluster, api=api)
    try:
        yield proc
    finally:
        proc.stop()


def start_server(tmp: Path, *, ip: str, ordinal: int = 0, replicas: int = 1,
                 peers: list[str] | None = None, cluster: str = "aws-eks",
                 api: tuple[str, str, Path | None] | None = None) -> ConsulProcess:
    container = _container(chart_objects(cluster, replicas=replicas), "StatefulSet")
    if peers is not None:
        script = container["command"][2]
        kept = [line for line in script.splitlines() if "-retry-join=" not in line]
        at = next(i for i, line in enumerate(kept) if "-serf-lan-port" in line)
        kept[at:at] = [f'  -retry-join="{p}:8301" \\' for p in peers]
        container["command"] = [*container["command"][:2], "\n".join(kept) + "\n"]
    name = f"consul-server-{ordinal}"
    env = {"ADVERTISE_IP": ip, "POD_IP": ip, "HOST_IP": "127.0.0.1", "NAMESPACE": "consul",
           "HOSTNAME": name, "CONSUL_DISABLE_PERM_MGMT": "true"}
    data = tmp / "pvc" / f"data-consul-{name}"
    data.mkdir(parents=True, exist_ok=True)
    mounts = {"/consul/data": str(data)}
    if api is not None:
        url, token, ca = api
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        env.update(KUBERNETES_SERVICE_HOST=host, KUBERNETES_SERVICE_PORT=port)
        mounts[SA_DIR] = _sa_dir(tmp / "pods" / name, token, ca)
    proc = start_process(tmp, name=name, ip=ip, namespace="consul",
                         entry="meshproof.lab.consul.server:run", container=container, env=env,
                         mounts=mounts, cluster=cluster)
    wait_http(f"http://{ip}:8500/v1/status/leader", proc)
    return proc


@contextmanager
def catalog_sync(tmp: Path, *, ip: str, consul_ip: str, api: tuple[str, str, Path | None],
                 cluster: str = "aws-eks", write_interval: str | None = None
                 ) -> Iterator[ConsulProcess]:
    """The chart's ``consul-sync-catalog`` container, its Consul address set to ``consul_ip``."""
    container = _container(chart_objects(cluster), "Deployment")
    if write_interval:
        script = container["command"][2].replace(
            "  -consul-node-name", f"  -consul-write-interval={write_interval} \\\n"
                                   "  -consul-node-name")
        container["command"] = [*container["command"][:2], script]
    url, token, ca = api
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    name = "consul-sync-catalog-6f7c9d-x2x4q"
    env = {"CONSUL_ADDRESSES": consul_ip, "CONSUL_HTTP_PORT": "8500",
           "CONSUL_DATACENTER": cluster, "NAMESPACE": "consul", "HOSTNAME": name,
           "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
    mounts = {SA_DIR: _sa_dir(tmp / "pods" / name, token, ca)}
    proc = start_process(tmp, name=name, ip=ip, namespace="consul",
                         entry="meshproof.lab.consul.sync:run", container=container, env=env,
                         mounts=mounts, cluster=cluster)
    try:
        wait_http(f"http://{ip}:8080/health/ready", proc)
        yield proc
    finally:
        proc.stop()
