"""Installs the mesh into the lab's clusters from the same files the kind bootstrap uses.

Order as ``make kind-up`` runs it (clusters/kind.mk): the plug-in CA and
``cacerts``, ``istio-system`` with its network label, Istio's CRDs and control
plane (``istioctl install -f clusters/istio/<cluster>.yaml``), the east-west
gateway and ``cross-network-gateway``, remote secrets both ways, then the mesh
namespaces, the workloads and Prometheus. Objects are applied through each
cluster's object store with create-or-replace semantics, as ``kubectl apply``
leaves them.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml

from meshproof import pki
from meshproof.errors import LabError
from meshproof.lab.certmanager import install as certmanager_install
from meshproof.lab.consul import install as consul_install
from meshproof.lab.install.crds import istio_crds
from meshproof.lab.install.istioctl import render_operator
from meshproof.lab.kube.interfaces import AlreadyExists, ObjectStore

__all__ = [
    "READER_USER",
    "apply_objects",
    "clusters_dir",
    "load_manifests",
    "mesh_objects",
    "plugin_ca",
    "remote_secret",
]

Obj = dict[str, Any]
READER_USER = "system:serviceaccount:istio-system:istio-reader-service-account"


def clusters_dir() -> Path:
    """The repository's ``clusters/`` (``MESHPROOF_CLUSTERS_DIR`` overrides)."""
    override = os.environ.get("MESHPROOF_CLUSTERS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[4] / "clusters"


def load_manifests(*paths: Path) -> list[Obj]:
    """Every object in the YAML files (multi-document), in file order."""
    out: list[Obj] = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind"):
                out.append(doc)
    return out


def _files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.yaml")) if directory.is_dir() else []


def plugin_ca(state: Path, clusters: Sequence[str]) -> tuple[pki.CertKey, dict[str, pki.CertKey]]:
    """The shared root and one intermediate per cluster, kept in the lab's state directory."""
    root_dir = state / "ca"
    if not (root_dir / "root-cert.pem").exists():
        pki.write_plugin_ca(root_dir, clusters)
    root = pki.load_cert_key(root_dir / "root-cert.pem", root_dir / "root-key.pem")
    intermediates = {}
    for name in clusters:
        if not (root_dir / name / "ca-cert.pem").exists():
            pki.write_plugin_ca(root_dir, clusters)
        loaded = pki.load_cert_key(root_dir / name / "ca-cert.pem", root_dir / name / "ca-key.pem")
        intermediates[name] = pki.CertKey(cert=loaded.cert, key=loaded.key, chain=(root.cert,))
    return root, intermediates


def remote_secret(cluster: str, *, server: str, token: str, ca_pem: bytes) -> Obj:
    """What ``istioctl create-remote-secret --name=<cluster>`` prints (FACTS.md)."""
    kubeconfig = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {
            "certificate-authority-data": base64.b64encode(ca_pem).decode(), "server": server}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
        "current-context": cluster,
        "users": [{"name": cluster, "user": {"token": token}}],
    }
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": f"istio-remote-secret-{cluster}", "namespace": "istio-system",
                     "annotations": {"networking.istio.io/cluster": cluster},
                     "labels": {"istio/multiCluster": "true"}},
        "stringData": {cluster: yaml.safe_dump(kubeconfig, sort_keys=False)},
    }


def control_plane_objects(cluster: str, *, root: pki.CertKey, intermediate: pki.CertKey,
                          remotes: Iterable[Obj], source: Path | None = None,
                          istio_tag: str | None = None) -> list[Obj]:
    """What ``make kind-up`` installs before the workloads: CRDs, CA, Istio (at
    ``istio_tag`` when given), gateways, remote secrets, cert-manager and Consul, in the
    order they are applied."""
    base = source or clusters_dir()
    istio = base / "istio"
    cacerts = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "cacerts", "namespace": "istio-system"},
               "stringData": pki.cacerts_secret_data(root, intermediate)}
    objects: list[Obj] = [*istio_crds()]
    objects += load_manifests(istio / f"istio-system-{cluster}.yaml")
    objects.append(cacerts)
    objects += render_operator(yaml.safe_load((istio / f"{cluster}.yaml").read_text()),
                               tag=istio_tag)
    objects += render_operator(
        yaml.safe_load((istio / f"eastwest-gateway-{cluster}.yaml").read_text()), tag=istio_tag)
    objects += load_manifests(istio / "cross-network-gateway.yaml")
    objects += list(remotes)
    objects += certmanager_install.render()
    objects += consul_install.render(
        yaml.safe_load((base / "consul" / "values.yaml").read_text()), cluster=cluster)
    return objects


def workload_objects(cluster: str, *, source: Path | None = None) -> list[Obj]:
    """What ``make kind-up`` applies once the control plane is Ready."""
    base = source or clusters_dir()
    objects = load_manifests(*_files(base / "mesh"))
    objects += load_manifests(*_files(base / "cert-manager"))
    objects += load_manifests(*_files(base / "workloads" / "common"))
    objects += load_manifests(*_files(base / "workloads" / cluster))
    objects += load_manifests(*_files(base / "prometheus"))
    return objects


def mesh_objects(cluster: str, *, root: pki.CertKey, intermediate: pki.CertKey,
                 remotes: Iterable[Obj], source: Path | None = None) -> list[Obj]:
    """Everything the mesh needs in ``cluster``, in the order it is applied."""
    return (control_plane_objects(cluster, root=root, intermediate=intermediate,
                                  remotes=remotes, source=source)
            + workload_objects(cluster, source=source))


async def apply_objects(store: ObjectStore, objects: Iterable[Obj]) -> None:
    """Create each object, or replace it when it exists (``kubectl apply`` for a fresh lab)."""
    for obj in objects:
        res = store.kind_for(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or ("default" if res.namespaced else None)
        try:
            await store.create(res, obj, namespace=namespace)
        except AlreadyExists:
            current = await store.get(res, meta["name"], namespace=namespace)
            replacement = dict(obj, metadata=dict(
                meta, resourceVersion=current["metadata"]["resourceVersion"]))
            await store.update(res, replacement)




class LabClusterLike(Protocol):
    name: str
    store: ObjectStore
    url: str

    @property
    def ca_pem(self) -> bytes: ...

    @property
    def reader_token(self) -> str: ...


READY_NAMESPACES = ("istio-system", "cert-manager", "consul", "sample", "production")


async def _not_ready(store: ObjectStore, namespaces: Sequence[str]) -> list[str]:
    waiting = []
    for kind in ("Deployment", "StatefulSet"):
        res = store.kind_for("apps/v1", kind)
        for ns in namespaces:
            items, _ = await store.list(res, namespace=ns)
            for obj in items:
                wanted = (obj.get("spec") or {}).get("replicas", 1)
                ready = (obj.get("status") or {}).get("readyReplicas", 0)
                if ready < wanted:
                    waiting.append(f"{ns}/{obj['metadata']['name']} {ready}/{wanted}")
    return waiting


async def wait_ready(clusters: Sequence[LabClusterLike], namespaces: Sequence[str], *,
                     timeout: float, interval: float = 0.5) -> None:
    """Until every Deployment and StatefulSet of ``namespaces`` is ready in every cluster."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        waiting = [f"{c.name}: {w}" for c in clusters for w in await _not_ready(c.store,
                                                                                 namespaces)]
        if not waiting:
            return
        if loop.time() > deadline:
            raise LabError(f"the mesh was not ready after {timeout:g}s; still waiting for "
                           f"{', '.join(waiting[:6])}{' ...' if len(waiting) > 6 else ''}")
        await asyncio.sleep(interval)


async def install_mesh(clusters: Sequence[LabClusterLike], state: Path, *,
                       timeout: float, istio_tag: str | None = None) -> None:
    """Install the mesh into every cluster as ``make kind-up`` does, and wait until Ready."""
    root, intermediates = plugin_ca(state, [c.name for c in clusters])
    for cluster in clusters:
        remotes = [remote_secret(other.name, server=other.url, token=other.reader_token,
                                 ca_pem=other.ca_pem)
                   for other in clusters if other is not cluster]
        await apply_objects(cluster.store, control_plane_objects(
            cluster.name, root=root, intermediate=intermediates[cluster.name],
            remotes=remotes, istio_tag=istio_tag))
    await wait_ready(clusters, ("istio-system",), timeout=timeout)
    for cluster in clusters:
        await apply_objects(cluster.store, workload_objects(cluster.name))
    await wait_ready(clusters, READY_NAMESPACES, timeout=timeout)
