"""Server-side printing: the ``meta.k8s.io/v1 Table`` that ``kubectl get`` asks for.

Columns follow the real printers (kubernetes/kubernetes
``pkg/printers/internalversion/printers.go``) for the kinds the suite looks at;
other kinds get Name and Age. Priority-1 columns are the ``-o wide`` ones.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

from meshproof.lab.kube.interfaces import ResourceKind
from meshproof.lab.kube.printercolumns import crd_columns
from meshproof.lab.kube.scale import selector_string

__all__ = ["human_age", "to_table", "wants_table"]

Obj = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority
Row = Callable[[Obj], list[Any]]


def wants_table(accept: str) -> bool:
    return any("as=Table" in part for part in accept.split(","))


def human_age(timestamp: str | None, now: float | None = None) -> str:
    """A duration the way kubectl shows ages (``duration.HumanDuration``)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<invalid>"
    seconds = int((now if now is not None else time.time()) - then)
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d" if days < 730 else f"{days // 365}y"


def _age(o: Obj) -> str:
    return human_age((o.get("metadata") or {}).get("creationTimestamp"))


def _containers(o: Obj) -> list[Obj]:
    spec = o.get("spec") or {}
    template = (spec.get("template") or {}).get("spec") or {}
    return list(template.get("containers") or [])


def _names(o: Obj) -> str:
    return ",".join(c.get("name", "") for c in _containers(o))


def _images(o: Obj) -> str:
    return ",".join(c.get("image", "") for c in _containers(o))


def _terminated_reason(terminated: Obj, prefix: str = "") -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def _pod_row(o: Obj) -> list[Any]:
    """READY / STATUS / RESTARTS as ``printPod`` computes them: sidecar containers (init
    containers with ``restartPolicy: Always``) count in READY's total and, once started,
    in its ready count; an init container that has not finished shows ``Init:...``."""
    spec, status = o.get("spec") or {}, o.get("status") or {}
    inits = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in inits if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(sidecars)
    ready = restarts = sidecar_restarts = 0
    shown = status.get("reason") or status.get("phase") or "Pending"
    initializing = False
    for i, s in enumerate(status.get("initContainerStatuses") or []):
        state = s.get("state") or {}
        restarts += int(s.get("restartCount", 0))
        if s.get("name") in sidecars:
            sidecar_restarts += int(s.get("restartCount", 0))
            if s.get("started"):
                ready += 1 if s.get("ready") else 0
                continue
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated and terminated.get("exitCode") == 0:
            continue
        if terminated:
            shown = _terminated_reason(terminated, "Init:")
        elif waiting.get("reason") and waiting["reason"] != "PodInitializing":
            shown = f"Init:{waiting['reason']}"
        else:
            shown = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True"
                      for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts = sidecar_restarts
        for s in reversed(status.get("containerStatuses") or []):
            state = s.get("state") or {}
            restarts += int(s.get("restartCount", 0))
            if (state.get("waiting") or {}).get("reason"):
                shown = state["waiting"]["reason"]
            elif state.get("terminated"):
                shown = _terminated_reason(state["terminated"])
            elif s.get("ready") and state.get("running") is not None:
                ready += 1
        if shown == "Completed" and any(
                (s.get("state") or {}).get("running") is not None and s.get("ready")
                for s in status.get("containerStatuses") or []):
            shown = "NotReady" if not _pod_ready(status) else "Running"
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        shown = "Terminating"
    return [o["metadata"]["name"], f"{ready}/{total}", shown,
            restarts, _age(o), status.get("podIP") or "<none>", spec.get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", "<none>"]


def _pod_ready(status: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def _ports(o: Obj) -> str:
    out = []
    for p in (o.get("spec") or {}).get("ports") or []:
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p.get('port')}{node}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _service_row(o: Obj) -> list[Any]:
    spec = o.get("spec") or {}
    ingress = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress)
    if not external:
        external = ",".join(spec.get("externalIPs") or []) or (
            "<pending>" if spec.get("type") == "LoadBalancer" else
            spec.get("externalName", "<none>"))
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [o["metadata"]["name"], spec.get("type", "ClusterIP"),
            spec.get("clusterIP") or "<none>", external, _ports(o), _age(o), selector or "<none>"]


def _deployment_row(o: Obj) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    return [o["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(o),
            _names(o), _images(o), selector_string(spec.get("selector"))]


def _replicaset_row(o: Obj) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    return [o["metadata"]["name"], spec.get("replicas", 0), status.get("replicas", 0),
            status.get("readyReplicas", 0), _age(o), _names(o), _images(o),
            selector_string(spec.get("selector"))]


def _statefulset_row(o: Obj) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    return [o["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            _age(o), _names(o), _images(o)]


def _namespace_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], (o.get("status") or {}).get("phase", "Active"), _age(o)]


def _node_row(o: Obj) -> list[Any]:
    status = o.get("status") or {}
    ready: Obj = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"),
                      {})
    state = "Ready" if ready.get("status") == "True" else "NotReady"
    roles = sorted(k.split("/", 1)[1] for k in (o["metadata"].get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/"))
    internal = next((a.get("address") for a in status.get("addresses") or []
                     if a.get("type") == "InternalIP"), "<none>")
    return [o["metadata"]["name"], state, ",".join(roles) or "<none>", _age(o),
            (status.get("nodeInfo") or {}).get("kubeletVersion", ""), internal]


def _endpoints_row(o: Obj) -> list[Any]:
    pairs = [f"{a.get('ip')}:{p.get('port')}" for s in o.get("subsets") or []
             for a in s.get("addresses") or [] for p in s.get("ports") or []]
    shown = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [o["metadata"]["name"], shown or "<none>", _age(o)]


def _event_row(o: Obj) -> list[Any]:
    involved = o.get("involvedObject") or {}
    return [human_age(o.get("lastTimestamp") or o["metadata"].get("creationTimestamp")),
            o.get("type", ""), o.get("reason", ""),
            f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
            o.get("message", "")]


_S, _I = "string", "integer"
_PRINTERS: dict[tuple[str, str], tuple[list[Column], Row]] = {
    ("", "pods"): ([("Name", _S, 0), ("Ready", _S, 0), ("Status", _S, 0), ("Restarts", _I, 0),
                    ("Age", _S, 0), ("IP", _S, 1), ("Node", _S, 1), ("Nominated Node", _S, 1),
                    ("Readiness Gates", _S, 1)], _pod_row),
    ("", "services"): ([("Name", _S, 0), ("Type", _S, 0), ("Cluster-IP", _S, 0),
                        ("External-IP", _S, 0), ("Port(s)", _S, 0), ("Age", _S, 0),
                        ("Selector", _S, 1)], _service_row),
    ("apps", "deployments"): ([("Name", _S, 0), ("Ready", _S, 0), ("Up-to-date", _I, 0),
                               ("Available", _I, 0), ("Age", _S, 0), ("Containers", _S, 1),
                               ("Images", _S, 1), ("Selector", _S, 1)], _deployment_row),
    ("apps", "replicasets"): ([("Name", _S, 0), ("Desired", _I, 0), ("Current", _I, 0),
                               ("Ready", _I, 0), ("Age", _S, 0), ("Containers", _S, 1),
                               ("Images", _S, 1), ("Selector", _S, 1)], _replicaset_row),
    ("apps", "statefulsets"): ([("Name", _S, 0), ("Ready", _S, 0), ("Age", _S, 0),
                                ("Containers", _S, 1), ("Images", _S, 1)], _statefulset_row),
    ("", "namespaces"): ([("Name", _S, 0), ("Status", _S, 0), ("Age", _S, 0)], _namespace_row),
    ("", "nodes"): ([("Name", _S, 0), ("Status", _S, 0), ("Roles", _S, 0), ("Age", _S, 0),
                     ("Version", _S, 0), ("Internal-IP", _S, 1)], _node_row),
    ("", "endpoints"): ([("Name", _S, 0), ("Endpoints", _S, 0), ("Age", _S, 0)],
                        _endpoints_row),
    ("", "events"): ([("Last Seen", _S, 0), ("Type", _S, 0), ("Reason", _S, 0),
                      ("Object", _S, 0), ("Message", _S, 0)], _event_row),
}
_DEFAULT: tuple[list[Column], Row] = (
    [("Name", _S, 0), ("Age", _S, 0)], lambda o: [o["metadata"]["name"], _age(o)])


def _row_object(o: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return o
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata") or {}}


def to_table(res: ResourceKind, items: list[Obj], resource_version: str,
             include_object: str = "", *, crd: Obj | None = None) -> Obj:
    """A Table of ``items``; ``include_object`` is the request's ``includeObject``; a custom
    resource's ``crd`` supplies its printer columns."""
    if crd is not None:
        columns, row = crd_columns(crd, res.version, human_age)
    else:
        columns, row = _PRINTERS.get((res.group, res.plural), _DEFAULT)
    rows = []
    for item in items:
        entry: Obj = {"cells": row(item)[: len(columns)]}
        embedded = _row_object(item, include_object or "PartialObjectMetadata")
        if embedded is not None:
            entry["object"] = embedded
        rows.append(entry)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": [{"name": n, "type": t, "format": "name" if n == "Name" else "",
                                   "description": n, "priority": p} for n, t, p in columns],
            "rows": rows}
