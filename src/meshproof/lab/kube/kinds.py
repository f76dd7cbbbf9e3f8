"""What a real API server does for particular kinds when they are created:
Service clusterIPs and nodePorts, a Job's generated selector, a CRD's status and
the resources it makes served."""

from __future__ import annotations

import copy
import ipaddress
import itertools
from collections.abc import Iterable
from typing import Any

from meshproof.lab.kube.apierrors import Forbidden
from meshproof.lab.kube.interfaces import Invalid, ResourceKind
from meshproof.lab.kube.resources import ALL_VERBS, ResourceInfo

__all__ = ["ServiceAddresses", "default_job_selector", "crd_status", "crd_resources"]

Obj = dict[str, Any]
_NODE_PORT_BASE = 30000  # the default --service-node-port-range starts here


class ServiceAddresses:
    """Hands out Service clusterIPs from one range, as the real IP allocator does."""

    def __init__(self, cidr: str, *, cluster: str) -> None:
        self.network = ipaddress.ip_network(cidr)
        self.cluster = cluster
        self._used: set[str] = set()

    def allocate(self, svc: Obj, others: Iterable[Obj]) -> None:
        """Fill ``spec.clusterIP(s)`` (and nodePorts) of a new Service in place."""
        spec = svc.setdefault("spec", {})
        if spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
            return
        if spec.get("type") == "ExternalName":
            return
        wanted = spec.get("clusterIP")
        name = (svc.get("metadata") or {}).get("name", "")
        if wanted:
            if wanted in self._used:
                raise Invalid(f'Service "{name}" is invalid: spec.clusterIPs: Invalid value: '
                              f'"{wanted}": provided IP is already allocated')
        else:
            # The range's first address is the `kubernetes` Service's in a real cluster.
            wanted = next((str(h) for h in itertools.islice(self.network.hosts(), 1, None)
                           if str(h) not in self._used), None)
            if wanted is None:
                raise Forbidden(f'Service "{name}": no free clusterIP left in {self.network} '
                                f"in cluster {self.cluster}")
        self._used.add(wanted)
        spec["clusterIP"], spec["clusterIPs"] = wanted, [wanted]
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            used = {p.get("nodePort") for s in others
                    for p in (s.get("spec") or {}).get("ports") or []}
            candidate = _NODE_PORT_BASE
            for port in spec.get("ports") or []:
                if not port.get("nodePort"):
                    while candidate in used:
                        candidate += 1
                    port["nodePort"] = candidate
                    used.add(candidate)

    def release(self, svc: Obj) -> None:
        self._used.discard(str((svc.get("spec") or {}).get("clusterIP", "")))


def default_job_selector(job: Obj) -> None:
    """The selector and template labels the Job API generates unless manualSelector is set."""
    spec = job.setdefault("spec", {})
    if spec.get("manualSelector") or spec.get("selector"):
        return
    meta = job.get("metadata") or {}
    uid = meta.get("uid", "")
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.setdefault("template", {}).setdefault("metadata", {})
    template.setdefault("labels", {}).update({
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": meta.get("name", "")})


def crd_status(crd: Obj, now: str) -> Obj:
    """An accepted, established CRD's status (clients wait for ``Established``)."""
    spec = crd.get("spec") or {}
    return {
        "acceptedNames": copy.deepcopy(spec.get("names") or {}),
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
        "conditions": [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now}
            for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                            ("Established", "InitialNamesAccepted",
                             "the initial names have been accepted"))],
    }


def crd_resources(crd: Obj) -> list[ResourceInfo]:
    """One served resource per served version of the CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subs = tuple(sorted((version.get("subresources") or {}).keys()))
        res = ResourceKind(spec.get("group", ""), version["name"], names.get("plural", ""),
                           names.get("kind", ""), spec.get("scope") == "Namespaced",
                           tuple(names.get("shortNames") or ()), subs)
        out.append(ResourceInfo(res, ALL_VERBS, tuple(names.get("categories") or ()), crd=True))
    return out
