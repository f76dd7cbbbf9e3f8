"""How a run marks what it changes in a cluster, and the pure object arithmetic of undoing it.

An object a run creates carries the label ``RUN_ID_LABEL`` (so a sweep finds it
and deletes it); an object a run changes carries the annotation
``CHANGED_BY_ANNOTATION`` while changed (a person sees who touched it), and the
way back is kept in an undo record (``meshproof.safety.records``).
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "CHANGED_BY_ANNOTATION",
    "MANAGED_BY",
    "RUN_ID_LABEL",
    "apply_merge_patch",
    "describe_path",
    "inverse_merge_patch",
    "semantic_view",
    "split_path",
    "strip_server_fields",
]

RUN_ID_LABEL = "meshproof.io/run-id"
"""On every object a run creates (its value: the run id)."""
CHANGED_BY_ANNOTATION = "meshproof.io/changed-by-run"
"""On every object a run patches or scales, for as long as the change lasts."""
MANAGED_BY = {"app.kubernetes.io/managed-by": "meshproof"}

# Fields the API server sets; a manifest to re-create an object leaves them out
# (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/).
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp",
                    "managedFields", "selfLink", "deletionTimestamp",
                    "deletionGracePeriodSeconds")


def strip_server_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` without what the server sets (status, uid, versions, timestamps)."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for name in _SERVER_METADATA:
            meta.pop(name, None)
    return out


def semantic_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What two versions of an object are compared on: everything but server-set fields and
    the run's own marks (an object restored by a sweep equals its original in this view)."""
    out = strip_server_fields(obj)
    meta = out.get("metadata") or {}
    for key, mark in (("labels", RUN_ID_LABEL), ("annotations", CHANGED_BY_ANNOTATION)):
        values = meta.get(key)
        if isinstance(values, dict):
            values.pop(mark, None)
            if not values:
                meta.pop(key)
    return out


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with a JSON merge patch applied (RFC 7386: objects merge, ``null`` removes,
    anything else replaces)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


def inverse_merge_patch(original: Any, patch: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that takes ``apply_merge_patch(original, patch)`` back to ``original``.

    It names only the keys ``patch`` touches, so what others changed meanwhile
    elsewhere in the object is left as it is.
    """
    base = original if isinstance(original, dict) else {}
    inverse: dict[str, Any] = {}
    for key, value in patch.items():
        if key not in base:
            inverse[key] = None
        elif isinstance(value, dict) and isinstance(base[key], dict):
            inverse[key] = inverse_merge_patch(base[key], value)
        else:
            inverse[key] = copy.deepcopy(base[key])
    return inverse


def split_path(path: str) -> tuple[str, str]:
    """An object's API path as its collection's path and its name.

    ``/apis/apps/v1/namespaces/x/deployments/y`` → ``/apis/apps/v1/namespaces/x/deployments``
    and ``y``.
    """
    collection, _, name = path.rstrip("/").rpartition("/")
    if not collection or not name or not path.startswith(("/api/", "/apis/")):
        raise ValueError(f"{path!r} is not the API path of one object (e.g. "
                         "/apis/apps/v1/namespaces/NS/deployments/NAME)")
    return collection, name


def describe_path(path: str) -> str:
    """An object's API path in words: ``deployments istio-system/istiod``."""
    parts = path.strip("/").split("/")
    namespaced = "namespaces" in parts[:-2]
    namespace = parts[parts.index("namespaces") + 1] if namespaced else ""
    return f"{parts[-2]} {namespace + '/' if namespace else ''}{parts[-1]}"
