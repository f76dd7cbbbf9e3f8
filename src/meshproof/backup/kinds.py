"""Which kinds make up the mesh configuration, and which API version a cluster serves them in.

The kinds are the runbook's "Backup Strategy" (Maintenance Procedures / Disaster
Recovery): Istio's gateways, virtual services, destination rules, service entries,
peer authentications and authorization policies, and cert-manager's certificates,
issuers and cluster issuers. The version is never assumed: it is discovered from
the cluster's ``/apis`` documents (the group's preferred version first, then the
others), as ``kubectl get`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from meshproof.clients.kube import ClusterApi, NotFoundError

__all__ = [
    "MESH_KINDS",
    "RUNBOOK_WEEKLY_KINDS",
    "GroupKind",
    "ServedKind",
    "discover_kinds",
    "parse_kinds",
]


@dataclass(frozen=True, slots=True, order=True)
class GroupKind:
    """A kind by API group, independent of version (``networking.istio.io``, ``Gateway``)."""

    group: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


@dataclass(frozen=True, slots=True)
class ServedKind:
    """A kind as one cluster serves it: the version and plural discovery named."""

    group_kind: GroupKind
    version: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        group = self.group_kind.group
        return f"{group}/{self.version}" if group else self.version

    @property
    def collection(self) -> str:
        """The path listing every object of the kind (in all namespaces)."""
        group = self.group_kind.group
        root = f"/apis/{group}/{self.version}" if group else f"/api/{self.version}"
        return f"{root}/{self.plural}"

    def object_path(self, namespace: str, name: str) -> str:
        """The API path of one object of the kind."""
        group = self.group_kind.group
        root = f"/apis/{group}/{self.version}" if group else f"/api/{self.version}"
        where = f"/namespaces/{namespace}" if self.namespaced else ""
        return f"{root}{where}/{self.plural}/{name}"

    def collection_in(self, namespace: str) -> str:
        """The path objects of the kind are created in (``namespace`` for namespaced kinds)."""
        return self.object_path(namespace, "x").rpartition("/")[0]


_ISTIO_NET, _ISTIO_SEC = "networking.istio.io", "security.istio.io"
_CERT_MANAGER = "cert-manager.io"

MESH_KINDS: tuple[GroupKind, ...] = (
    GroupKind(_ISTIO_NET, "Gateway"),
    GroupKind(_ISTIO_NET, "VirtualService"),
    GroupKind(_ISTIO_NET, "DestinationRule"),
    GroupKind(_ISTIO_NET, "ServiceEntry"),
    GroupKind(_ISTIO_SEC, "PeerAuthentication"),
    GroupKind(_ISTIO_SEC, "AuthorizationPolicy"),
    GroupKind(_CERT_MANAGER, "Certificate"),
    GroupKind(_CERT_MANAGER, "Issuer"),
    GroupKind(_CERT_MANAGER, "ClusterIssuer"),
)
"""The runbook's "Backup Strategy" (lines 797-802): mesh policies, certificates, issuers."""

RUNBOOK_WEEKLY_KINDS: tuple[GroupKind, ...] = MESH_KINDS[:3]
"""The runbook's weekly "Backup configurations" (line 759): gateways, virtual services and
destination rules only. Restoring from it loses the rest; it is the drill's negative control."""


def parse_kinds(names: Iterable[str]) -> tuple[GroupKind, ...]:
    """Mesh kinds from names as ``kubectl get`` takes them (``gateway``, ``PeerAuthentication``,
    ``virtualservices``); ``ValueError`` naming the unknown ones."""
    wanted: list[GroupKind] = []
    unknown: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        found = next((gk for gk in MESH_KINDS if name in (gk.kind.lower(), gk.kind.lower() + "s",
                                                          str(gk).lower())), None)
        if found is None:
            unknown.append(raw)
        elif found not in wanted:
            wanted.append(found)
    if unknown:
        raise ValueError(f"not a mesh configuration kind: {', '.join(unknown)} (kinds: "
                         f"{', '.join(gk.kind.lower() for gk in MESH_KINDS)})")
    return tuple(wanted)


def discover_kinds(api: ClusterApi, kinds: Iterable[GroupKind] = MESH_KINDS
                   ) -> tuple[list[ServedKind], list[GroupKind]]:
    """The kinds ``api``'s cluster serves (in its preferred version where it has one) and
    the kinds it does not serve (their CRD is not installed)."""
    groups = {str(g.get("name")): g for g in api.get("/apis").get("groups") or []}
    resources: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    served: list[ServedKind] = []
    missing: list[GroupKind] = []
    for group_kind in kinds:
        group = groups.get(group_kind.group)
        if group is None:
            missing.append(group_kind)
            continue
        if group_kind.group not in resources:
            resources[group_kind.group] = _versions(api, group)
        match = next(
            (ServedKind(group_kind, version, str(res["name"]), bool(res.get("namespaced")))
             for version, listed in resources[group_kind.group] for res in listed
             if res.get("kind") == group_kind.kind and "/" not in str(res.get("name", ""))),
            None)
        if match is None:
            missing.append(group_kind)
        else:
            served.append(match)
    return served, missing


def _versions(api: ClusterApi, group: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Each version of an ``/apis`` group entry with its resources, preferred first."""
    first = str((group.get("preferredVersion") or {}).get("version", ""))
    versions = [str(v.get("version")) for v in group.get("versions") or []]
    ordered = ([first] if first in versions else []) + [v for v in versions if v != first]
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for version in ordered:
        try:
            listed = api.get(f"/apis/{group['name']}/{version}").get("resources") or []
        except NotFoundError:
            continue
        out.append((version, [r for r in listed if isinstance(r, dict)]))
    return out
