"""Semantic comparison of two mesh exports, object by object (pure).

Two objects are equal when they are equal after leaving out what the API server
sets (``status``, ``metadata.uid``, ``resourceVersion``, ``generation``,
``creationTimestamp``, ``managedFields``, ``selfLink``, deletion fields), the
safety layer's marks (label ``meshproof.io/run-id``, annotation
``meshproof.io/changed-by-run``), kubectl's last-applied annotation and the version
in ``apiVersion`` (the same kind read in another served version is the same object).
Objects are matched by group, kind, namespace and name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from meshproof.backup.export import group_kind_of
from meshproof.backup.kinds import GroupKind
from meshproof.safety.marks import semantic_view

__all__ = [
    "IGNORED_ANNOTATIONS",
    "Comparison",
    "FieldChange",
    "ObjectDifference",
    "ObjectKey",
    "compare_objects",
    "key_of",
    "mesh_view",
]

IGNORED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
"""Annotations a client writes as a copy of the object; they say nothing about the mesh."""
_SHOWN = 120


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """Which object: group, kind, namespace ("" when cluster-scoped) and name."""

    group_kind: GroupKind
    namespace: str
    name: str

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.group_kind.kind} {where}{self.name}"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs: its dotted path and both values (shortened)."""

    path: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.path}: {self.before} → {self.after}"


@dataclass(frozen=True, slots=True)
class ObjectDifference:
    """An object that is not the same in both exports."""

    key: ObjectKey
    change: Literal["missing", "unexpected", "changed"]
    """missing: only in the original; unexpected: only in the other; changed: in both."""
    fields: tuple[FieldChange, ...] = ()

    def __str__(self) -> str:
        if self.change == "missing":
            return f"{self.key} is missing"
        if self.change == "unexpected":
            return f"{self.key} is there but was not in the original"
        shown = "; ".join(str(f) for f in self.fields[:5])
        more = f" (and {len(self.fields) - 5} more)" if len(self.fields) > 5 else ""
        return f"{self.key} differs: {shown}{more}"


@dataclass(frozen=True, slots=True)
class Comparison:
    """The original export against another, object by object."""

    original: int
    """How many objects the original holds."""
    equal: int
    """How many of them the other holds unchanged."""
    differences: tuple[ObjectDifference, ...] = field(default_factory=tuple)

    @property
    def identical(self) -> bool:
        return not self.differences

    @property
    def missing(self) -> tuple[ObjectDifference, ...]:
        return tuple(d for d in self.differences if d.change == "missing")

    def summary(self) -> str:
        """One line: how many objects are equal, and the first differences."""
        if self.identical:
            return f"all {self.original} objects equal"
        shown = "; ".join(str(d) for d in self.differences[:3])
        more = (f" (and {len(self.differences) - 3} more differences)"
                if len(self.differences) > 3 else "")
        return f"{self.equal} of {self.original} objects equal: {shown}{more}"


def key_of(obj: dict[str, Any]) -> ObjectKey:
    """The identity of a manifest."""
    meta = obj.get("metadata") or {}
    return ObjectKey(group_kind_of(obj), str(meta.get("namespace") or ""),
                     str(meta.get("name") or ""))


def mesh_view(obj: dict[str, Any]) -> dict[str, Any]:
    """What an object is compared on (see the module docstring)."""
    out = semantic_view(obj)
    out["apiVersion"] = group_kind_of(obj).group
    meta = out.get("metadata") or {}
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        for name in IGNORED_ANNOTATIONS:
            annotations.pop(name, None)
        if not annotations:
            meta.pop("annotations")
    return out


def compare_objects(original: Iterable[dict[str, Any]],
                    other: Iterable[dict[str, Any]]) -> Comparison:
    """Compare ``other`` with ``original``: each original object missing, changed or equal,
    and each object ``other`` has in addition."""
    before = {key_of(o): mesh_view(o) for o in original}
    after = {key_of(o): mesh_view(o) for o in other}
    differences: list[ObjectDifference] = []
    equal = 0
    for key in sorted(before.keys() | after.keys()):
        if key not in after:
            differences.append(ObjectDifference(key, "missing"))
        elif key not in before:
            differences.append(ObjectDifference(key, "unexpected"))
        else:
            changes = tuple(_diff(before[key], after[key], ""))
            if changes:
                differences.append(ObjectDifference(key, "changed", changes))
            else:
                equal += 1
    return Comparison(original=len(before), equal=equal, differences=tuple(differences))


def _diff(before: Any, after: Any, path: str) -> Iterable[FieldChange]:
    """Every leaf where ``before`` and ``after`` differ, as dotted paths."""
    if isinstance(before, dict) and isinstance(after, dict):
        for name in sorted(before.keys() | after.keys(), key=str):
            where = f"{path}.{name}" if path else str(name)
            if name not in after:
                yield FieldChange(where, _show(before[name]), "(absent)")
            elif name not in before:
                yield FieldChange(where, "(absent)", _show(after[name]))
            else:
                yield from _diff(before[name], after[name], where)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (left, right) in enumerate(zip(before, after, strict=True)):
            yield from _diff(left, right, f"{path}[{index}]")
    elif before != after or type(before) is not type(after):
        yield FieldChange(path or "(object)", _show(before), _show(after))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
