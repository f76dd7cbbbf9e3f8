"""Validation a real API server does before storing: names, labels and required fields.

Failures raise ``Invalid`` shaped like the real 422 ``Status``: the message
``<Kind> "<name>" is invalid: <field>: <problem>`` and one cause per problem
(reasons ``FieldValueRequired`` / ``FieldValueInvalid``).
"""

from __future__ import annotations

import re
from typing import Any

from meshproof.lab.kube.interfaces import Invalid, ResourceKind
from meshproof.lab.kube.selectors import selector_from_match

__all__ = ["is_dns1123_label", "is_dns1123_subdomain", "validate"]

Obj = dict[str, Any]

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_LABEL_RE = re.compile(rf"^{_LABEL}$")
_DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")

_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                  "characters, '-' or '.', and must start and end with an alphanumeric character")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
              "or '-', and must start and end with an alphanumeric character")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character")

# Kinds whose names must be DNS labels (they become DNS names or hostnames).
_LABEL_NAMED = {("", "Namespace")}
_DNS1035_NAMED = {("", "Service")}


def is_dns1123_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_SUBDOMAIN_RE.match(name))


def is_dns1123_label(name: str) -> bool:
    return len(name) <= 63 and bool(_LABEL_RE.match(name))


class _Problems:
    def __init__(self) -> None:
        self.causes: list[dict[str, str]] = []

    def required(self, field: str) -> None:
        self.causes.append({"reason": "FieldValueRequired", "message": "Required value",
                            "field": field})

    def invalid(self, field: str, value: Any, why: str) -> None:
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        self.causes.append({"reason": "FieldValueInvalid",
                            "message": f"Invalid value: {shown}: {why}", "field": field})


def _check_name(res: ResourceKind, name: str, p: _Problems) -> None:
    key = (res.group, res.kind)
    if key in _DNS1035_NAMED:
        ok, why = len(name) <= 63 and bool(_DNS1035_RE.match(name)), _DNS1035_MSG
    elif key in _LABEL_NAMED:
        ok, why = is_dns1123_label(name), _LABEL_MSG
    elif res.group == "rbac.authorization.k8s.io":
        ok, why = "/" not in name and "%" not in name, "may not contain '/' or '%'"
    else:
        ok, why = is_dns1123_subdomain(name), _SUBDOMAIN_MSG
    if not ok:
        p.invalid("metadata.name", name, why)


def _check_labels(meta: Obj, p: _Problems) -> None:
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, name = str(key).rpartition("/")
        if not name or len(name) > 63 or not _QUALIFIED_NAME_RE.match(name) or (
                prefix and not is_dns1123_subdomain(prefix)):
            p.invalid("metadata.labels", key, "name part must consist of alphanumeric "
                      "characters, '-', '_' or '.'")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE_RE.match(value):
            p.invalid("metadata.labels", value, "a valid label must be an empty string or "
                      "consist of alphanumeric characters, '-', '_' or '.'")


def _check_pod_spec(spec: Any, path: str, p: _Problems) -> None:
    if not isinstance(spec, dict):
        p.required(path)
        return
    containers = spec.get("containers")
    if not containers:
        p.required(f"{path}.containers")
        return
    for i, c in enumerate(containers):
        if not c.get("name"):
            p.required(f"{path}.containers[{i}].name")
        elif not is_dns1123_label(c["name"]):
            p.invalid(f"{path}.containers[{i}].name", c["name"], _LABEL_MSG)
        if not c.get("image"):
            p.required(f"{path}.containers[{i}].image")


def _check_workload(obj: Obj, p: _Problems, *, needs_selector: bool = True) -> None:
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    template = spec.get("template")
    if needs_selector and not selector:
        p.required("spec.selector")
    if not isinstance(template, dict):
        p.required("spec.template")
        return
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and not selector_from_match(selector).matches(labels):
        p.invalid("spec.template.metadata.labels", labels,
                  "`selector` does not match template `labels`")
    _check_pod_spec(template.get("spec"), "spec.template.spec", p)


def _check_service(obj: Obj, p: _Problems) -> None:
    spec = obj.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return
    for i, port in enumerate(spec.get("ports") or []):
        if not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
            p.invalid(f"spec.ports[{i}].port", port.get("port"),
                      "must be between 1 and 65535, inclusive")
    if len(spec.get("ports") or []) > 1 and not all(x.get("name") for x in spec["ports"]):
        p.required("spec.ports.name")


def validate(res: ResourceKind, obj: Obj) -> None:
    """Raise ``Invalid`` listing every problem found in ``obj`` (a defaulted object)."""
    p = _Problems()
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        p.required("metadata.name")
    else:
        _check_name(res, name, p)
    _check_labels(meta, p)
    key = (res.group, res.kind)
    if key == ("", "Pod"):
        _check_pod_spec(obj.get("spec"), "spec", p)
    elif key in {("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"),
                 ("apps", "DaemonSet")}:
        _check_workload(obj, p)
    elif key == ("batch", "Job"):
        _check_workload(obj, p, needs_selector=False)
    elif key == ("", "Service"):
        _check_service(obj, p)
    if p.causes:
        first = p.causes[0]
        detail = "; ".join(f"{c['field']}: {c['message']}" for c in p.causes)
        shown = "[" + detail + "]" if len(p.causes) > 1 else f"{first['field']}: {first['message']}"
        raise Invalid(f'{res.kind} "{name}" is invalid: {shown}',
                      details={"name": name, "group": res.group, "kind": res.kind,
                               "causes": p.causes})
