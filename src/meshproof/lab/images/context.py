"""What a lab program is given about the container it runs as (stdlib only: pods stay light)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["ContainerContext", "map_path"]


def map_path(path: str, mounts: dict[str, str]) -> str:
    """A container path as a host path: the longest ``mountPath`` prefix is replaced by the
    volume's directory; paths under no mount come back unchanged."""
    best = ""
    for mount in mounts:
        m = mount.rstrip("/") or "/"
        if (path == m or path.startswith(m.rstrip("/") + "/")) and len(m) > len(best):
            best = m
    if not best:
        return path
    rest = path[len(best):].lstrip("/")
    host = mounts.get(best) or mounts.get(best + "/") or ""
    return str(Path(host) / rest) if rest else host


@dataclass(slots=True)
class ContainerContext:
    """One container of one pod, as its program sees it."""

    cluster: str
    """The lab cluster (``aws-eks`` / ``gcp-gke``)."""
    namespace: str
    pod: str
    container: dict[str, Any]
    """The container's spec from the pod, unchanged (name, image, command, args, ports, ...)."""
    argv: list[str]
    """``command`` + ``args`` after ``$(VAR)`` expansion and mount-path mapping."""
    env: dict[str, str]
    """The container's environment (spec env, downward API, secret/configmap refs)."""
    pod_ip: str
    """The pod's loopback address; bind listeners here, not to 0.0.0.0."""
    host_ip: str
    pod_dir: str
    """The pod's directory in the lab state dir (volumes, logs)."""
    mounts: dict[str, str] = field(default_factory=dict)
    """``mountPath`` → host directory (or file) holding that volume."""
    log: TextIO = sys.stdout
    """The container log (``kubectl logs``); stdout and stderr also go there."""

    @property
    def name(self) -> str:
        return str(self.container.get("name", ""))

    def path(self, container_path: str) -> Path:
        """Where a file the container would read at ``container_path`` really is."""
        return Path(map_path(container_path, self.mounts))

    def to_json(self) -> str:
        data = {k: getattr(self, k) for k in self.__slots__ if k != "log"}
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ContainerContext:
        return cls(**json.loads(text))
