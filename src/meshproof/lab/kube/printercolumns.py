"""A CRD's ``additionalPrinterColumns`` for ``kubectl get`` tables.

Columns name a JSONPath in the small dialect CRDs use (``.spec.hosts``,
``.status.conditions[?(@.type=="Ready")].status``, ``.items[0]``, ``[*]``);
cells are rendered the way the real server's CRD table convertor does: scalars
as text, lists and maps as JSON, ``date`` columns as ages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["crd_columns", "evaluate"]

Obj = dict[str, Any]
_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-$]+)"  # .field
    r"|\[(\d+)\]"  # [index]
    r"|\[\*\]"  # [*]
    r"""|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["']([^"']*)["']\)\]"""  # [?(@.key=="v")]
)


def evaluate(obj: Any, path: str) -> list[Any]:
    """Every value ``path`` selects in ``obj`` (an empty list when nothing matches)."""
    current = [obj]
    pos, text = 0, path.strip().lstrip("{").rstrip("}")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            return []
        pos = m.end()
        name, index, filter_key, filter_value = m.groups()
        following: list[Any] = []
        for value in current:
            if name is not None:
                if isinstance(value, dict) and name in value:
                    following.append(value[name])
            elif index is not None:
                if isinstance(value, list) and int(index) < len(value):
                    following.append(value[int(index)])
            elif filter_key is not None:
                if isinstance(value, list):
                    following += [v for v in value if _first_text(v, filter_key) == filter_value]
            elif isinstance(value, list):
                following += value
        current = following
    return current


def _first_text(value: Any, key: str) -> str | None:
    found = evaluate(value, "." + key) if isinstance(value, dict) else []
    return str(found[0]) if found else None


def _render(values: list[Any], type_: str, age: Callable[[str], str]) -> Any:
    if not values:
        return "<none>" if type_ in ("string", "date") else None
    value = values[0] if len(values) == 1 else values
    if type_ == "date" and isinstance(value, str):
        return age(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


def crd_columns(crd: Obj, version: str, age: Callable[[str], str]
                ) -> tuple[list[tuple[str, str, int]], Callable[[Obj], list[Any]]]:
    """Column definitions and a row function for the CRD's ``version``; Age is appended when
    the CRD declares no columns (as the real server does)."""
    declared: list[Obj] = []
    for v in (crd.get("spec") or {}).get("versions") or []:
        if v.get("name") == version:
            declared = list(v.get("additionalPrinterColumns") or [])
    if not declared:
        declared = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    columns = [("Name", "string", 0)] + [
        (c.get("name", ""), c.get("type", "string"), int(c.get("priority", 0)))
        for c in declared]

    def row(obj: Obj) -> list[Any]:
        return [obj["metadata"]["name"]] + [
            _render(evaluate(obj, c.get("jsonPath", "")), c.get("type", "string"), age)
            for c in declared]

    return columns, row
