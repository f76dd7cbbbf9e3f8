"""A pod's volumes as files under its directory, and its containers' environments.

The container sees a volume at ``volumeMounts[].mountPath``; the lab puts it at
``<pod dir>/volumes/<volume name>/`` (PVCs at ``<lab dir>/pvc/<cluster>/<ns>/<claim>``)
and tells the program the mapping (``ContainerContext.mounts``, env
``MESHPROOF_LAB_MOUNTS``); command arguments naming a mounted path are rewritten.
Every container also gets a private ``/tmp`` (``<pod dir>/tmp/<container>``, ``$TMPDIR``).
Reference: kubernetes/kubernetes ``pkg/volume/{configmap,secret,projected,downwardapi}``,
``pkg/kubelet/kubelet_pods.go`` (env, ``$(VAR)`` expansion, downward API formats).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from meshproof.lab.kube.interfaces import NotFound, ObjectStore
from meshproof.lab.kube.kubelet.tokens import TokenIssuer

__all__ = [
    "SA_MOUNT",
    "ConfigError",
    "container_mounts",
    "expand_vars",
    "materialize_volumes",
    "write_atomically",
    "resolve_env",
]

Obj = dict[str, Any]
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
"""Where every pod (without automountServiceAccountToken: false) finds token, ca.crt, namespace."""


class ConfigError(Exception):
    """A referenced ConfigMap / Secret / key is missing: the kubelet reports it and retries."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason  # FailedMount | CreateContainerConfigError


async def _get(store: ObjectStore, kind: str, name: str, ns: str) -> Obj | None:
    try:
        return await store.get(store.kind_for("v1", kind), name, namespace=ns)
    except NotFound:
        return None


def _data(obj: Obj, kind: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if kind == "Secret":
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v or "")
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = str(v).encode()
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = str(v).encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v or "")
    return out


def _field(pod: Obj, path: str) -> str:
    meta = pod.get("metadata", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['?([^'\]]+)'?\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": pod.get("spec", {}).get("nodeName"),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", "default"),
        "status.podIP": pod.get("status", {}).get("podIP"),
        "status.hostIP": pod.get("status", {}).get("hostIP"),
        "status.podIPs": ",".join(i["ip"] for i in pod.get("status", {}).get("podIPs") or []),
        "status.hostIPs": pod.get("status", {}).get("hostIP"),
    }
    return str(simple.get(path) or "")


async def _source_files(store: ObjectStore, pod: Obj, src: Obj, kind: str, *, cluster: str,
                        ) -> dict[str, bytes] | None:
    """The files one configMap / secret source contributes (None: optional and missing)."""
    ns = pod["metadata"]["namespace"]
    name = src.get("name") or src.get("secretName") or ""
    obj = await _get(store, kind, name, ns)
    if obj is None:
        if src.get("optional"):
            return None
        raise ConfigError("FailedMount", f'{kind.lower()} "{name}" not found')
    data = _data(obj, kind)
    if not src.get("items"):
        return data
    files: dict[str, bytes] = {}
    for item in src["items"]:
        if item["key"] not in data:
            if src.get("optional"):
                continue
            raise ConfigError("FailedMount",
                              f'configmap references non-existent config key: {item["key"]}'
                              if kind == "ConfigMap" else
                              f'references non-existent secret key: {item["key"]}')
        files[item.get("path") or item["key"]] = data[item["key"]]
    return files


async def _volume_files(store: ObjectStore, pod: Obj, vol: Obj, *, cluster: str,
                        ca_pem: bytes, tokens: TokenIssuer) -> dict[str, bytes] | None:
    """Files for a file-backed volume; None for directory volumes (emptyDir and the like)."""
    spec = pod.get("spec", {})
    ns = pod["metadata"]["namespace"]
    if "configMap" in vol:
        return await _source_files(store, pod, vol["configMap"], "ConfigMap", cluster=cluster) or {}
    if "secret" in vol:
        return await _source_files(store, pod, vol["secret"], "Secret", cluster=cluster) or {}
    if "downwardAPI" in vol:
        return {i["path"]: _field(pod, i.get("fieldRef", {}).get("fieldPath", "")).encode()
                for i in vol["downwardAPI"].get("items") or []}
    if "projected" in vol:
        files: dict[str, bytes] = {}
        for src in vol["projected"].get("sources") or []:
            if "serviceAccountToken" in src:
                t = src["serviceAccountToken"]
                files[t.get("path", "token")] = tokens.issue(
                    ns, spec.get("serviceAccountName", "default"), audience=t.get("audience", ""),
                    seconds=int(t.get("expirationSeconds", 3600))).encode()
            elif "configMap" in src:
                files.update(await _source_files(store, pod, src["configMap"], "ConfigMap",
                                                 cluster=cluster) or {})
            elif "secret" in src:
                files.update(await _source_files(store, pod, src["secret"], "Secret",
                                                 cluster=cluster) or {})
            elif "downwardAPI" in src:
                files.update({i["path"]: _field(pod, i.get("fieldRef", {}).get("fieldPath", ""))
                              .encode() for i in src["downwardAPI"].get("items") or []})
            elif "clusterTrustBundle" in src:
                files[src["clusterTrustBundle"].get("path", "ca.crt")] = ca_pem
        return files
    return None


def write_atomically(root: Path, files: dict[str, bytes]) -> bool:
    """Put ``files`` under ``root`` the way the kubelet's AtomicWriter does: the data lives in
    a timestamped ``..<ts>`` directory, ``..data`` links to it and each top-level name links
    through ``..data``, so a reader sees the old or the new set, never a mix. Returns False
    when the contents were already there (nothing written).
    (kubernetes/kubernetes ``pkg/volume/util/atomic_writer.go``)"""
    data_link = root / "..data"
    if data_link.is_symlink():
        current = root / os.readlink(data_link)
        existing = {str(p.relative_to(current)): p.read_bytes()
                    for p in current.rglob("*") if p.is_file()}
        if existing == files:
            return False
    root.mkdir(parents=True, exist_ok=True)
    stamp = f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    new_dir = root / stamp
    for rel, content in files.items():
        target = new_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    new_dir.mkdir(exist_ok=True)
    old = os.readlink(data_link) if data_link.is_symlink() else None
    tmp_link = root / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    tmp_link.symlink_to(stamp)
    tmp_link.replace(data_link)
    tops = {rel.split("/", 1)[0] for rel in files}
    for entry in root.iterdir():
        if not entry.name.startswith("..") and entry.name not in tops:
            if entry.is_symlink() or entry.is_file():
                entry.unlink()
            else:
                shutil.rmtree(entry, ignore_errors=True)
    for top in tops:
        link = root / top
        if not link.is_symlink():
            if link.is_dir():
                shutil.rmtree(link)
            elif link.exists():
                link.unlink()
            link.symlink_to(f"..data/{top}")
    if old:
        shutil.rmtree(root / old, ignore_errors=True)
    return True


async def materialize_volumes(store: ObjectStore, pod: Obj, pod_dir: Path, *, lab_dir: Path,
                              cluster: str, ca_pem: bytes, tokens: TokenIssuer
                              ) -> dict[str, Path]:
    """Write (or bring up to date) every volume of ``pod``; volume name → host path.
    Raises ``ConfigError`` when a referenced object or key is missing."""
    spec = pod.get("spec", {})
    ns = pod["metadata"]["namespace"]
    out: dict[str, Path] = {}
    for vol in spec.get("volumes") or []:
        name = vol["name"]
        if "persistentVolumeClaim" in vol:
            path = lab_dir / "pvc" / cluster / ns / vol["persistentVolumeClaim"]["claimName"]
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = pod_dir / "volumes" / name
            files = await _volume_files(store, pod, vol, cluster=cluster, ca_pem=ca_pem,
                                        tokens=tokens)
            if files is None:
                path.mkdir(parents=True, exist_ok=True)
            else:
                write_atomically(path, files)
        out[name] = path
    if spec.get("automountServiceAccountToken", True) is not False:
        sa = spec.get("serviceAccountName", "default")
        path = pod_dir / "volumes" / "kube-api-access"
        write_atomically(path, {
            "token": tokens.issue(ns, sa, seconds=3607).encode(),
            "ca.crt": ca_pem, "namespace": ns.encode(),
        })
        out[""] = path  # the implicit service-account volume
    return out


def container_mounts(container: Obj, volumes: dict[str, Path], *, pod_dir: Path) -> dict[str, str]:
    """``mountPath`` → host path for one container (``subPath`` points into the volume)."""
    mounts: dict[str, str] = {}
    if "" in volumes:
        mounts[SA_MOUNT] = str(volumes[""])
    # Each container has its own /tmp, as with a real container's root filesystem.
    tmp = pod_dir / "tmp" / str(container.get("name", ""))
    tmp.mkdir(parents=True, exist_ok=True)
    mounts["/tmp"] = str(tmp)
    for m in container.get("volumeMounts") or []:
        vol = volumes.get(m["name"])
        if vol is None:
            # A claim from volumeClaimTemplates or an undeclared volume: a private directory.
            vol = pod_dir / "volumes" / m["name"]
            vol.mkdir(parents=True, exist_ok=True)
        host = vol / m["subPath"] if m.get("subPath") else vol
        mounts[str(m["mountPath"]).rstrip("/") or "/"] = str(host)
    return mounts


def expand_vars(text: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes, others stay."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, text)


async def resolve_env(store: ObjectStore, pod: Obj, container: Obj) -> dict[str, str]:
    """The container's env: envFrom, then env (downward API, key refs, $(VAR) expansion)."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        kind, ref = ("ConfigMap", src["configMapRef"]) if "configMapRef" in src else \
            ("Secret", src.get("secretRef") or {})
        obj = await _get(store, kind, ref.get("name", ""), ns)
        if obj is None:
            if ref.get("optional"):
                continue
            raise ConfigError("CreateContainerConfigError",
                              f'{kind.lower()} "{ref.get("name")}" not found')
        for k, v in _data(obj, kind).items():
            env[src.get("prefix", "") + k] = v.decode(errors="replace")
    for e in container.get("env") or []:
        name = e["name"]
        if "valueFrom" not in e:
            env[name] = expand_vars(str(e.get("value", "")), env)
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            env[name] = _field(pod, vf["fieldRef"].get("fieldPath", ""))
        elif "resourceFieldRef" in vf:
            res = vf["resourceFieldRef"].get("resource", "")
            limits = (container.get("resources") or {}).get("limits") or {}
            # Without a limit the downward API reports the node's allocatable (8 CPU, 16 GiB).
            default = "8" if "cpu" in res else "17179869184"
            env[name] = str(limits.get(res.split(".", 1)[-1], default))
        else:
            kind, ref = ("Secret", vf["secretKeyRef"]) if "secretKeyRef" in vf else \
                ("ConfigMap", vf.get("configMapKeyRef") or {})
            obj = await _get(store, kind, ref.get("name", ""), ns)
            data = _data(obj, kind) if obj is not None else None
            if data is None or ref.get("key") not in data:
                if ref.get("optional"):
                    continue
                if data is None:
                    msg = f'{kind.lower()} "{ref.get("name")}" not found'
                else:
                    msg = f'couldn\'t find key {ref.get("key")} in {kind} {ns}/{ref.get("name")}'
                raise ConfigError("CreateContainerConfigError", msg)
            env[name] = data[ref["key"]].decode(errors="replace")
    return env
