"""Label and field selectors as the Kubernetes API parses them.

Label selectors: equality (``a=b``, ``a==b``, ``a!=b``), set-based (``a in (x,y)``,
``a notin (x)``), existence (``a``, ``!a``), comma-joined (all must hold).
Field selectors: ``path=value``, ``path==value``, ``path!=value`` over dotted paths
(``metadata.name``, ``status.phase``, ``spec.nodeName``, ``involvedObject.kind``, ``type``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from meshproof.lab.kube.apierrors import BadRequest

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_match",
]

Predicate = Callable[[Mapping[str, str]], bool]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[A-Za-z0-9_.\-]*"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    terms.append("".join(current))
    return [t for t in terms if t.strip()]


class LabelSelector:
    """A parsed label selector; ``matches(labels)``. The empty selector matches everything."""

    def __init__(self, text: str, predicates: list[Predicate]) -> None:
        self.text = text
        self._predicates = predicates

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(p(labels) for p in self._predicates)

    def __repr__(self) -> str:
        return f"LabelSelector({self.text!r})"


def _term(term: str) -> Predicate:
    if m := _SET_RE.match(term):
        key, op, raw = m.groups()
        values = {v.strip() for v in raw.split(",") if v.strip()}
        if op == "in":
            return lambda lb: key in lb and lb[key] in values
        return lambda lb: key not in lb or lb[key] not in values
    if m := _EQ_RE.match(term):
        key, op, value = m.groups()
        if op == "!=":
            return lambda lb: lb.get(key) != value
        return lambda lb: lb.get(key) == value
    if m := _EXISTS_RE.match(term):
        neg, key = m.groups()
        if neg:
            return lambda lb: key not in lb
        return lambda lb: key in lb
    raise BadRequest(f"unable to parse requirement: {term.strip()!r}")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse ``text``; raises ``BadRequest`` (400, as the real server) naming the bad term."""
    return LabelSelector(text, [_term(t) for t in _split_terms(text or "")])


def selector_from_match(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A ``LabelSelector`` from a ``metav1.LabelSelector`` (matchLabels / matchExpressions)."""
    selector = selector or {}
    terms = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return parse_label_selector(",".join(terms))


def _path_value(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


class FieldSelector:
    """A parsed field selector; ``matches(obj)``."""

    def __init__(self, text: str, terms: list[tuple[str, bool, str]]) -> None:
        self.text = text
        self.terms = terms  # (path, equal?, value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_path_value(obj, path) == value) == equal for path, equal, value in self.terms)

    def __repr__(self) -> str:
        return f"FieldSelector({self.text!r})"


_FIELD_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_.]*)\s*(==|!=|=)\s*(.*?)\s*$")


def parse_field_selector(text: str) -> FieldSelector:
    """Parse ``text``; raises ``BadRequest`` for a term that is not ``path op value``."""
    terms: list[tuple[str, bool, str]] = []
    for raw in _split_terms(text or ""):
        m = _FIELD_RE.match(raw)
        if not m:
            raise BadRequest(f"invalid selector: {raw.strip()!r}; can't understand "
                             f"'{raw.strip()}'")
        path, op, value = m.groups()
        terms.append((path, op != "!=", value))
    return FieldSelector(text, terms)
