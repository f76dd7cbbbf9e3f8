"""The resources one lab API server serves: the built-in table and the CRDs added at run time.

Kinds, short names, verbs, categories and subresources follow the real discovery
documents (kubernetes/kubernetes ``api/discovery/api__v1.json``,
``apis__apps__v1.json`` and siblings), trimmed to what the lab serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from meshproof.lab.kube.interfaces import NotFound, ResourceKind

__all__ = [
    "ALL_VERBS",
    "ResourceInfo",
    "ResourceTable",
    "SubresourceInfo",
    "builtin_table",
]

ALL_VERBS: tuple[str, ...] = (
    "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
)
_NS_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")
_STATUS = ("get", "patch", "update")


@dataclass(frozen=True, slots=True)
class SubresourceInfo:
    """How discovery describes ``<plural>/<name>``: its kind (maybe of another group) and verbs."""

    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str | None = None  # None: the parent's group/version
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """A served resource with what discovery says about it."""

    res: ResourceKind
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    subresources: tuple[SubresourceInfo, ...] = ()
    crd: bool = False

    @property
    def singular(self) -> str:
        return self.res.kind.lower()


def _sub(name: str, kind: str, verbs: tuple[str, ...], group: str | None = None,
         version: str | None = None) -> SubresourceInfo:
    return SubresourceInfo(name, kind, verbs, group, version)


def _info(group: str, version: str, plural: str, kind: str, *, namespaced: bool = True,
          short: tuple[str, ...] = (), verbs: tuple[str, ...] = ALL_VERBS,
          categories: tuple[str, ...] = (), subs: tuple[SubresourceInfo, ...] = ()) -> ResourceInfo:
    res = ResourceKind(group, version, plural, kind, namespaced, short,
                       tuple(s.name for s in subs))
    return ResourceInfo(res, verbs, categories, subs)


def _builtin() -> list[ResourceInfo]:
    def status(kind: str) -> SubresourceInfo:
        return _sub("status", kind, _STATUS)

    scale = _sub("scale", "Scale", _STATUS, "autoscaling", "v1")
    proxy = ("create", "delete", "get", "patch", "update")
    return [
        _info("", "v1", "namespaces", "Namespace", namespaced=False, short=("ns",),
              verbs=_NS_VERBS, subs=(status("Namespace"), _sub("finalize", "Namespace",
                                                                 ("update",)))),
        _info("", "v1", "pods", "Pod", short=("po",), categories=("all",), subs=(
            status("Pod"),
            _sub("attach", "PodAttachOptions", ("create", "get")),
            _sub("binding", "Binding", ("create",)),
            _sub("eviction", "Eviction", ("create",), "policy", "v1"),
            _sub("exec", "PodExecOptions", ("create", "get")),
            _sub("log", "Pod", ("get",)),
            _sub("proxy", "PodProxyOptions", proxy),
        )),
        _info("", "v1", "services", "Service", short=("svc",), categories=("all",),
              subs=(status("Service"), _sub("proxy", "ServiceProxyOptions", proxy))),
        _info("", "v1", "endpoints", "Endpoints", short=("ep",)),
        _info("", "v1", "configmaps", "ConfigMap", short=("cm",)),
        _info("", "v1", "secrets", "Secret"),
        _info("", "v1", "serviceaccounts", "ServiceAccount", short=("sa",)),
        _info("", "v1", "events", "Event", short=("ev",)),
        _info("", "v1", "nodes", "Node", namespaced=False, short=("no",),
              subs=(status("Node"), _sub("proxy", "NodeProxyOptions", proxy))),
        _info("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",),
              subs=(status("PersistentVolumeClaim"),)),
        _info("apps", "v1", "deployments", "Deployment", short=("deploy",),
              categories=("all",), subs=(scale, status("Deployment"))),
        _info("apps", "v1", "replicasets", "ReplicaSet", short=("rs",), categories=("all",),
              subs=(scale, status("ReplicaSet"))),
        _info("apps", "v1", "statefulsets", "StatefulSet", short=("sts",),
              categories=("all",), subs=(scale, status("StatefulSet"))),
        _info("apps", "v1", "daemonsets", "DaemonSet", short=("ds",), categories=("all",),
              subs=(status("DaemonSet"),)),
        _info("coordination.k8s.io", "v1", "leases", "Lease"),
        _info("events.k8s.io", "v1", "events", "Event", short=("ev",)),
        _info("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
        _info("apiextensions.k8s.io", "v1", "customresourcedefinitions",
              "CustomResourceDefinition", namespaced=False, short=("crd", "crds"),
              categories=("api-extensions",), subs=(status("CustomResourceDefinition"),)),
        _info("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
              "MutatingWebhookConfiguration", namespaced=False, categories=("api-extensions",)),
        _info("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
              "ValidatingWebhookConfiguration", namespaced=False,
              categories=("api-extensions",)),
        _info("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        _info("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        _info("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole",
              namespaced=False),
        _info("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
              namespaced=False),
        _info("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",),
              subs=(status("PodDisruptionBudget"),)),
        _info("batch", "v1", "jobs", "Job", categories=("all",), subs=(status("Job"),)),
    ]


@dataclass(slots=True)
class ResourceTable:
    """Served resources, looked up by URL parts or by apiVersion/kind. Order is discovery order."""

    _infos: list[ResourceInfo] = field(default_factory=list)
    # Groups with no resources of their own that discovery still lists (autoscaling/v1 holds
    # only the Scale kind that deployments/scale returns).
    _empty_groups: tuple[tuple[str, str], ...] = (("autoscaling", "v1"),)

    def add(self, info: ResourceInfo) -> None:
        self._infos = [i for i in self._infos if not _same(i.res, info.res)] + [info]

    def remove_group_resource(self, group: str, plural: str) -> None:
        self._infos = [i for i in self._infos
                       if not (i.res.group == group and i.res.plural == plural)]

    def infos(self) -> list[ResourceInfo]:
        return list(self._infos)

    def lookup(self, group: str, version: str, plural: str) -> ResourceInfo:
        for info in self._infos:
            r = info.res
            if r.group == group and r.version == version and r.plural == plural:
                return info
        where = f"{group}/{version}" if group else version
        raise NotFound(f'the server could not find the requested resource ({where}, {plural})',
                       details={"group": group, "kind": plural})

    def kind_for(self, api_version: str, kind: str) -> ResourceKind:
        group, _, version = api_version.rpartition("/")
        for info in self._infos:
            r = info.res
            if r.group == group and r.version == version and r.kind == kind:
                return r
        raise NotFound(f"no resource of kind {kind} in {api_version}",
                       details={"group": group, "kind": kind})

    def groups(self) -> list[tuple[str, list[str]]]:
        """(group, versions) in discovery order; the core group is "". Versions newest first."""
        order: dict[str, list[str]] = {}
        for info in self._infos:
            versions = order.setdefault(info.res.group, [])
            if info.res.version not in versions:
                versions.append(info.res.version)
        for group, version in self._empty_groups:
            order.setdefault(group, [version])
        return [(g, sorted(v, key=_version_rank, reverse=True)) for g, v in order.items()]

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [i for i in self._infos if i.res.group == group and i.res.version == version]

    def has_group_version(self, group: str, version: str) -> bool:
        return any(g == group and version in vs for g, vs in self.groups())

    def storage_kinds(self) -> Iterable[ResourceKind]:
        """One ResourceKind per stored (group, plural)."""
        seen: set[tuple[str, str]] = set()
        for info in self._infos:
            key = (info.res.group, info.res.plural)
            if key not in seen:
                seen.add(key)
                yield info.res


def _same(a: ResourceKind, b: ResourceKind) -> bool:
    return (a.group, a.version, a.plural) == (b.group, b.version, b.plural)


def _version_rank(version: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA > beta > alpha, then by number."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (-1, 0, 0)
    stage = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    return (stage, int(m.group(1)), int(m.group(3) or 0))


def builtin_table() -> ResourceTable:
    """A fresh table holding the built-in resources (each API server gets its own)."""
    table = ResourceTable()
    for info in _builtin():
        table.add(info)
    return table
