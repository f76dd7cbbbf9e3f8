"""The three PATCH flavours a Kubernetes API server takes.

- ``application/strategic-merge-patch+json`` for built-in kinds: maps merge,
  ``null`` deletes, lists with a patch merge key merge element by element
  (directives ``$patch: delete|replace|merge``, ``$retainKeys``,
  ``$deleteFromPrimitiveList/<f>``; ``$setElementOrder/<f>`` orders the result),
  other lists are replaced. Merge keys follow the ``patchMergeKey`` tags of
  kubernetes/api ``core/v1/types.go`` and ``apps/v1/types.go``.
- ``application/merge-patch+json`` (RFC 7386).
- ``application/json-patch+json`` (RFC 6902, through the ``jsonpatch`` package).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from meshproof.lab.kube.apierrors import BadRequest, UnsupportedMediaType
from meshproof.lab.kube.interfaces import Invalid

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "STRATEGIC_MERGE_PATCH",
    "apply_patch",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# field name -> merge key; ports are told apart by where they sit.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "env": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "taints": "key",
    "addresses": "type",
}
# Lists of scalars whose strategy is "merge" (a set union).
_MERGED_SCALAR_LISTS = {"finalizers"}

Obj = dict[str, Any]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Obj, ops: Any) -> Obj:
    """RFC 6902; a failing test or a bad path is 422 Invalid, a malformed document 400."""
    if not isinstance(ops, list):
        raise BadRequest("json patch must be a list of operations")
    try:
        result: Obj = jsonpatch.JsonPatch(ops).apply(copy.deepcopy(target))
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        # A failed "test" operation or a path that does not exist, as the real server says.
        raise Invalid("the server rejected our request due to an error in our request: "
                      f"{exc}") from exc
    except (TypeError, KeyError, IndexError) as exc:
        raise BadRequest(f"json patch could not be applied: {exc}") from exc
    return result


def _merge_key(field: str, path: tuple[str, ...]) -> str | None:
    if field == "ports":
        # Container ports merge on containerPort, Service ports on port.
        in_container = any(p in ("containers", "initContainers", "ephemeralContainers")
                           for p in path)
        return "containerPort" if in_container else "port"
    return _MERGE_KEYS.get(field)


def _merge_map(original: Any, patch: Obj, path: tuple[str, ...]) -> Obj:
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return {}
    result: Obj = copy.deepcopy(original) if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value or []
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = set(map(str, value or []))
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if str(v) not in drop]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = _merge_map(result.get(key), value, (*path, key))
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key, (*path, key))
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _ordered(result[field], order, _merge_key(field, (*path, field)))
    return result


def _ordered(items: list[Any], order: list[Any], key: str | None) -> list[Any]:
    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    first = [i for w in wanted for i in items if ident(i) == w]
    rest = [i for i in items if ident(i) not in wanted]
    return first + rest


def _merge_list(original: Any, patch: list[Any], field: str, path: tuple[str, ...]) -> list[Any]:
    original = original if isinstance(original, list) else []
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch
                if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    key = _merge_key(field, path)
    if field in _MERGED_SCALAR_LISTS and all(not isinstance(p, dict) for p in patch):
        return list(original) + [p for p in patch if p not in original]
    if key is None or not all(isinstance(p, dict) for p in patch):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original)
    for item in patch:
        if key not in item:
            raise BadRequest(f"strategic merge patch: an element of {'.'.join(path)} lacks its "
                             f"merge key {key!r}")
        index = next((i for i, o in enumerate(result)
                      if isinstance(o, dict) and o.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            result.append(_merge_map({}, item, path))
        else:
            result[index] = _merge_map(result[index], item, path)
    return result


def strategic_merge_patch(target: Obj, patch: Any) -> Obj:
    """Apply a strategic-merge-patch document to a built-in object."""
    if not isinstance(patch, dict):
        raise BadRequest("strategic merge patch must be a JSON object")
    return _merge_map(target, patch, ())


def apply_patch(target: Obj, content_type: str, body: Any, *, builtin: bool) -> Obj:
    """Dispatch on the request's Content-Type. Custom resources take no strategic merge."""
    media = content_type.split(";", 1)[0].strip()
    if media == JSON_PATCH:
        return json_patch(target, body)
    if media == MERGE_PATCH:
        if not isinstance(body, dict):
            raise BadRequest("merge patch must be a JSON object")
        result: Obj = merge_patch(target, body)
        return result
    if media == STRATEGIC_MERGE_PATCH:
        if not builtin:
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}")
        return strategic_merge_patch(target, body)
    raise UnsupportedMediaType(f"the body of the request was in an unknown format - accepted "
                               f"media types include: {JSON_PATCH}, {MERGE_PATCH}, "
                               f"{STRATEGIC_MERGE_PATCH}, {APPLY_PATCH}")
