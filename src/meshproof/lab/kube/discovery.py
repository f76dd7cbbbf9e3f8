"""Discovery documents: ``/api``, ``/apis``, ``/api/v1``, ``/apis/<g>/<v>``, ``/version`` and the
aggregated form (``apidiscovery.k8s.io/v2``) kubectl asks for first.

Shapes follow kubernetes/kubernetes ``api/discovery/api.json``, ``apis.json``,
``api__v1.json`` and ``aggregated_v2.json``.
"""

from __future__ import annotations

from typing import Any

from meshproof.lab.kube.resources import ResourceInfo, ResourceTable, SubresourceInfo

__all__ = [
    "AGGREGATED_CONTENT_TYPE",
    "SERVER_VERSION",
    "aggregated",
    "core_versions",
    "group_list",
    "resource_list",
    "version_info",
    "wants_aggregated",
]

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
# kubectl here is Google's dispatcher: it picks its bundled kubectl by this version, and only
# 1.30–1.33 gets websocket exec (see FACTS.md).
SERVER_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.1",
                  "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
                  "gitTreeState": "clean", "buildDate": "2025-05-15T08:19:08Z",
                  "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64"}

Obj = dict[str, Any]


def wants_aggregated(accept: str) -> bool:
    """True when the Accept header asks for the v2 aggregated discovery list."""
    for part in accept.split(","):
        params = {p.strip() for p in part.split(";")}
        if ("as=APIGroupDiscoveryList" in params and "g=apidiscovery.k8s.io" in params
                and "v=v2" in params):
            return True
    return False


def version_info() -> Obj:
    return dict(SERVER_VERSION)


def core_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def group_list(table: ResourceTable) -> Obj:
    groups = []
    for group, versions in table.groups():
        if not group:
            continue
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entries(info: ResourceInfo) -> list[Obj]:
    res = info.res
    entry: Obj = {"name": res.plural, "singularName": info.singular, "namespaced": res.namespaced,
                  "kind": res.kind, "verbs": list(info.verbs)}
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if info.categories:
        entry["categories"] = list(info.categories)
    entries = [entry]
    subs = info.subresources or tuple(_crd_subs(info))
    for sub in subs:
        s: Obj = {"name": f"{res.plural}/{sub.name}", "singularName": "",
                  "namespaced": res.namespaced, "kind": sub.kind, "verbs": list(sub.verbs)}
        if sub.group is not None:
            s["group"], s["version"] = sub.group, sub.version
        entries.append(s)
    return entries


def _crd_subs(info: ResourceInfo) -> list[SubresourceInfo]:
    """A CRD's declared subresources, described as the built-in ones are."""
    out = []
    for name in info.res.subresources:
        if name == "status":
            out.append(SubresourceInfo("status", info.res.kind, ("get", "patch", "update")))
        elif name == "scale":
            out.append(SubresourceInfo("scale", "Scale", ("get", "patch", "update"),
                                       "autoscaling", "v1"))
    return out


def resource_list(table: ResourceTable, group: str, version: str) -> Obj:
    # Sorted by name, as the real documents are (a resource, then its subresources).
    resources = sorted((e for info in table.in_group_version(group, version)
                        for e in _resource_entries(info)), key=lambda e: e["name"])
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
            "resources": resources}


def _aggregated_resource(info: ResourceInfo) -> Obj:
    res = info.res
    out: Obj = {"resource": res.plural,
                "responseKind": {"group": res.group, "version": res.version, "kind": res.kind},
                "scope": "Namespaced" if res.namespaced else "Cluster",
                "singularResource": info.singular, "verbs": list(info.verbs)}
    if res.short_names:
        out["shortNames"] = list(res.short_names)
    if info.categories:
        out["categories"] = list(info.categories)
    subs = info.subresources or tuple(_crd_subs(info))
    if subs:
        out["subresources"] = [
            {"subresource": s.name,
             "responseKind": {"group": s.group if s.group is not None else res.group,
                              "version": s.version or res.version, "kind": s.kind},
             "verbs": list(s.verbs)} for s in subs]
    return out


def aggregated(table: ResourceTable, *, core: bool) -> Obj:
    """The ``APIGroupDiscoveryList`` for ``/api`` (core) or ``/apis`` (every named group)."""
    items = []
    for group, versions in table.groups():
        if (group == "") != core:
            continue
        item: Obj = {"metadata": {"name": group} if group else {},
                     "versions": [{"version": v, "freshness": "Current",
                                   "resources": [_aggregated_resource(i)
                                                 for i in table.in_group_version(group, v)]}
                                  for v in versions]}
        items.append(item)
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {}, "items": items}
