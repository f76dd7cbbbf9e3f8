"""Kubernetes pod discovery for a Prometheus built without it, through ``file_sd_configs``.

Debian's ``prometheus`` package is built without the Kubernetes service
discovery. The lab therefore runs the discovery itself: it lists the pods of
its cluster and writes, per ``kubernetes_sd_configs`` entry with ``role: pod``,
a targets file carrying the same ``__meta_kubernetes_pod_*`` labels Prometheus
would set (prometheus/prometheus ``discovery/kubernetes/pod.go``: one target
per container port, or one per container without ports), so the job's
``relabel_configs`` work unchanged.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["pod_targets", "watch_loop", "write_targets"]

Obj = dict[str, Any]
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _name(text: str) -> str:
    return _INVALID.sub("_", text)


def _ready(pod: Obj) -> str:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status", "unknown")).lower()
    return "unknown"


def _pod_labels(pod: Obj) -> dict[str, str]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    labels = {
        "__meta_kubernetes_namespace": str(meta.get("namespace", "")),
        "__meta_kubernetes_pod_name": str(meta.get("name", "")),
        "__meta_kubernetes_pod_ip": str(status.get("podIP", "")),
        "__meta_kubernetes_pod_ready": _ready(pod),
        "__meta_kubernetes_pod_phase": str(status.get("phase", "")),
        "__meta_kubernetes_pod_node_name": str(spec.get("nodeName", "")),
        "__meta_kubernetes_pod_host_ip": str(status.get("hostIP", "")),
        "__meta_kubernetes_pod_uid": str(meta.get("uid", "")),
    }
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            labels["__meta_kubernetes_pod_controller_kind"] = str(ref.get("kind", ""))
            labels["__meta_kubernetes_pod_controller_name"] = str(ref.get("name", ""))
    for key, value in (meta.get("labels") or {}).items():
        labels[f"__meta_kubernetes_pod_label_{_name(key)}"] = str(value)
        labels[f"__meta_kubernetes_pod_labelpresent_{_name(key)}"] = "true"
    for key, value in (meta.get("annotations") or {}).items():
        labels[f"__meta_kubernetes_pod_annotation_{_name(key)}"] = str(value)
        labels[f"__meta_kubernetes_pod_annotationpresent_{_name(key)}"] = "true"
    return labels


def pod_targets(pods: list[Obj], namespaces: list[str] | None = None) -> list[Obj]:
    """Prometheus file_sd target groups for ``pods``, as role ``pod`` discovery makes them."""
    groups: list[Obj] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if namespaces and meta.get("namespace") not in namespaces:
            continue
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            continue
        common = _pod_labels(pod)
        targets = []
        containers = [(c, False) for c in (pod.get("spec") or {}).get("containers") or []]
        containers += [(c, True) for c in (pod.get("spec") or {}).get("initContainers") or []]
        for container, init in containers:
            base = {"__meta_kubernetes_pod_container_name": str(container.get("name", "")),
                    "__meta_kubernetes_pod_container_image": str(container.get("image", "")),
                    "__meta_kubernetes_pod_container_init": str(init).lower()}
            ports = container.get("ports") or []
            if not ports and not init:
                targets.append({"targets": [ip], "labels": {**common, **base}})
            for port in ports:
                number = int(port.get("containerPort", 0))
                targets.append({"targets": [f"{ip}:{number}"], "labels": {
                    **common, **base,
                    "__meta_kubernetes_pod_container_port_name": str(port.get("name", "")),
                    "__meta_kubernetes_pod_container_port_number": str(number),
                    "__meta_kubernetes_pod_container_port_protocol":
                        str(port.get("protocol", "TCP")),
                }})
        groups.extend(targets)
    return groups


def write_targets(path: Path, groups: list[Obj]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _list_pods(api: str, token_file: Path, ca_file: Path) -> list[Obj]:
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file.exists() else None
    request = urllib.request.Request(f"{api}/api/v1/pods", headers={
        "Authorization": f"Bearer {token_file.read_text().strip()}"})
    with urllib.request.urlopen(request, timeout=10, context=context) as reply:
        return list(json.loads(reply.read()).get("items") or [])


def watch_loop(api: str, token_file: Path, ca_file: Path,
               outputs: list[tuple[Path, list[str] | None]], *, interval: float,
               parent: int) -> None:
    """Refresh the targets files every ``interval`` seconds until the parent process is gone."""
    while os.getppid() == parent:
        try:
            pods = _list_pods(api, token_file, ca_file)
            for path, namespaces in outputs:
                write_targets(path, pod_targets(pods, namespaces))
        except (OSError, ValueError) as exc:
            print(f"prometheus-discovery: listing pods failed: {exc}", flush=True)
        time.sleep(interval)
