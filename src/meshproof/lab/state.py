"""The lab's state directory and the files other tools read from it.

``$MESHPROOF_LAB_DIR`` or ``.meshproof/lab`` under the working directory holds:

- ``kubeconfig``: contexts ``aws-eks`` (current) and ``gcp-gke``, each with its own
  bearer token and the API server's CA as ``certificate-authority-data``;
- ``target.yaml``: the lab's target file (``meshproof run --target lab``);
- ``lab.json``: the daemon's pid, state and per-cluster API URLs;
- ``logs/``: ``supervisor.log``, per-cluster API request logs;
- ``pods/<cluster>/<namespace>/<pod>/``: each running pod's ``pid``, logs, volumes.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "LAB_JSON_VERSION",
    "LAB_NAMESPACES",
    "ClusterEndpoint",
    "LabPaths",
    "lab_dir",
    "pid_alive",
    "read_lab_json",
    "write_kubeconfig",
    "write_lab_json",
    "write_target",
]

LAB_JSON_VERSION = 1
LAB_NAMESPACES = ("sample", "production")
"""The namespaces under test in the lab's target (clusters/mesh/namespaces.yaml)."""


def lab_dir(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``$MESHPROOF_LAB_DIR`` or ``<cwd>/.meshproof/lab``, absolute."""
    env = os.environ if env is None else env
    base = Path(env.get("MESHPROOF_LAB_DIR") or ".meshproof/lab").expanduser()
    return ((cwd or Path.cwd()) / base).resolve()


@dataclass(frozen=True, slots=True)
class LabPaths:
    """Where each file of one lab lives."""

    root: Path

    @classmethod
    def default(cls) -> LabPaths:
        return cls(lab_dir())

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def target(self) -> Path:
        return self.root / "target.yaml"

    @property
    def lab_json(self) -> Path:
        return self.root / "lab.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def supervisor_log(self) -> Path:
        return self.logs / "supervisor.log"

    @property
    def pods(self) -> Path:
        return self.root / "pods"

    def pod_pid_files(self) -> list[Path]:
        return sorted(self.pods.glob("*/*/*/pid"))


@dataclass(frozen=True, slots=True)
class ClusterEndpoint:
    """One cluster's API server as a client reaches it."""

    name: str
    url: str
    token: str
    ca_pem: bytes
    network: str


def write_kubeconfig(path: Path, clusters: Sequence[ClusterEndpoint]) -> None:
    """A kubeconfig with one context per cluster (the first is current); mode 0600."""
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "current-context": clusters[0].name,
        "clusters": [{"name": c.name, "cluster": {
            "server": c.url,
            "certificate-authority-data": base64.b64encode(c.ca_pem).decode()}}
            for c in clusters],
        "users": [{"name": f"{c.name}-admin", "user": {"token": c.token}} for c in clusters],
        "contexts": [{"name": c.name, "context": {"cluster": c.name, "user": f"{c.name}-admin",
                                                  "namespace": "default"}} for c in clusters],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


LAB_STRICT_NAMESPACES = ("production",)
"""Where the mesh promises STRICT mTLS (clusters/mesh/peer-authentication-production.yaml)."""
LAB_THRESHOLDS: dict[str, dict[str, Any]] = {
    guarantee: {"window_s": 30, "reason": "a lab is minutes old: availability is judged over "
                "the last 30 s, the time a nightly run on it has measured"}
    for guarantee in ("CP-AVAIL", "GW-AVAIL")
}
"""The lab's loosened thresholds; every report shows them with their reason."""


def write_target(path: Path, clusters: Sequence[ClusterEndpoint], *,
                 prometheus: Mapping[str, Mapping[str, str]] | None = None,
                 consul: bool = False) -> None:
    """The lab's target file (schema: ``meshproof.target.schema.Target``).

    ``prometheus`` maps cluster → its settings (``url``, ``bearer_token_file``,
    ``ca_file``); a cluster without one gets ``prometheus: null`` (its
    Prometheus-based guarantees are then reported as not measurable). ``consul``
    names the in-cluster Consul the mesh's catalog sync fills.
    """
    prometheus = prometheus or {}
    doc: dict[str, Any] = {
        "name": "lab",
        "clusters": [{"name": c.name, "context": c.name, "kubeconfig": "kubeconfig",
                      "prometheus": dict(prometheus[c.name]) if c.name in prometheus
                      else None,
                      **({"consul": {"service": "consul-server", "namespace": "consul",
                                     "port": 8500}} if consul else {}),
                      "network": c.network} for c in clusters],
        "namespaces": list(LAB_NAMESPACES),
    }
    if prometheus:
        doc["strict_namespaces"] = list(LAB_STRICT_NAMESPACES)
        doc["thresholds"] = LAB_THRESHOLDS
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# Written by `meshproof lab up`; the lab rewrites it on every start.\n"
                   + yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(path)


def read_lab_json(path: Path) -> dict[str, Any] | None:
    """The daemon's state file, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_lab_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": LAB_JSON_VERSION, **data}, indent=2) + "\n")
    tmp.replace(path)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` names a live (not zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
