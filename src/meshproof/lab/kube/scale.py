"""The ``scale`` subresource: an ``autoscaling/v1 Scale`` view of a workload or custom object.

Built-in kinds keep replicas at ``spec.replicas`` / ``status.replicas``; a CRD
names its paths in ``subresources.scale`` (specReplicasPath, statusReplicasPath,
labelSelectorPath).
"""

from __future__ import annotations

import copy
from typing import Any

from meshproof.lab.kube.interfaces import Invalid, ResourceKind

__all__ = ["read_scale", "selector_string", "write_scale"]

Obj = dict[str, Any]


def selector_string(selector: Obj | None) -> str:
    """A ``metav1.LabelSelector`` as the string form ``status.selector`` carries."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op in ("In", "NotIn"):
            terms.append(f"{key} {op.lower()} ({','.join(values)})")
        elif op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def _paths(crd: Obj | None, res: ResourceKind) -> tuple[str, str, str]:
    if crd is None:
        return ".spec.replicas", ".status.replicas", ""
    for version in (crd.get("spec") or {}).get("versions") or []:
        if version.get("name") == res.version:
            scale = (version.get("subresources") or {}).get("scale") or {}
            return (scale.get("specReplicasPath", ".spec.replicas"),
                    scale.get("statusReplicasPath", ".status.replicas"),
                    scale.get("labelSelectorPath", ""))
    return ".spec.replicas", ".status.replicas", ""


def _get(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in [p for p in path.split(".") if p]:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set(obj: Obj, path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


def read_scale(res: ResourceKind, obj: Obj, crd: Obj | None) -> Obj:
    """The Scale object for ``obj``."""
    spec_path, status_path, selector_path = _paths(crd, res)
    meta = obj.get("metadata") or {}
    if crd is None:
        selector = selector_string((obj.get("spec") or {}).get("selector"))
    else:
        selector = str(_get(obj, selector_path) or "") if selector_path else ""
    status: Obj = {"replicas": int(_get(obj, status_path) or 0)}
    if selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": int(_get(obj, spec_path) or 0)}, "status": status}


def write_scale(res: ResourceKind, obj: Obj, crd: Obj | None, scale: Any) -> Obj:
    """A copy of ``obj`` with the replicas ``scale`` asks for (its resourceVersion, when
    given, becomes the write's precondition)."""
    replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
    name = (obj.get("metadata") or {}).get("name", "")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise Invalid(f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                      f"{replicas!r}: must be greater than or equal to 0",
                      details={"name": name, "group": "autoscaling", "kind": "Scale",
                               "causes": [{"reason": "FieldValueInvalid",
                                           "field": "spec.replicas",
                                           "message": "must be greater than or equal to 0"}]})
    spec_path, _, _ = _paths(crd, res)
    updated = copy.deepcopy(obj)
    _set(updated, spec_path, replicas)
    wanted_rv = (scale.get("metadata") or {}).get("resourceVersion")
    if wanted_rv:
        updated["metadata"]["resourceVersion"] = wanted_rv
    return updated
