"""Reading a target file: from a name or path to a validated ``Target``.

Three stages, each failing with one ``TargetError`` line
``<file>: <field>: <what is wrong>; <fix>``:
reading the file (exists, is a file, UTF-8, one YAML mapping without duplicate
keys), the schema (``schema.Target``), and checks across fields and files
(unique clusters, the blast radius names real clusters, kubeconfig contexts
exist, threshold overrides agree with the catalog, timeout names exist).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields as dataclass_fields
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from meshproof.catalog import Catalog, OverrideRejected, load_catalog
from meshproof.errors import TargetError
from meshproof.target.schema import NON_BLANK_PATTERN, Target
from meshproof.timeouts import Timeouts

__all__ = ["LAB_TARGET_NAME", "lab_target_path", "load_target", "resolve_target_path"]

LAB_TARGET_NAME = "lab"
"""The built-in target name: the lab's generated target file."""

_DOCS = "see docs/targets.md"

_Fail = Callable[[str, str], TargetError]


def lab_target_path(
    env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Path:
    """``$MESHPROOF_LAB_DIR/target.yaml``, default ``.meshproof/lab/target.yaml`` under ``cwd``."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    lab_dir = Path(env.get("MESHPROOF_LAB_DIR") or ".meshproof/lab").expanduser()
    return (cwd / lab_dir / "target.yaml").resolve()


def resolve_target_path(spec: str | os.PathLike[str]) -> Path:
    """The file a ``--target`` value names; ``lab`` must have been started first."""
    if str(spec) == LAB_TARGET_NAME:
        path = lab_target_path()
        if not path.is_file():
            raise TargetError(
                f"target 'lab': the lab's target file {path} does not exist; "
                "start the lab with `meshproof lab up` (or set MESHPROOF_LAB_DIR to its state dir)"
            )
        return path
    return Path(spec).expanduser().absolute()


def load_target(spec: str | os.PathLike[str], *, catalog: Catalog | None = None) -> Target:
    """Load and validate a target (``"lab"`` or a path). Raises ``TargetError``."""
    path = resolve_target_path(spec)
    raw = _read_mapping(path)
    try:
        target = Target.model_validate(raw, context={"base_dir": path.parent})
    except ValidationError as exc:
        raise TargetError(f"{path}: {_describe(exc, raw)}") from None
    _check_across(target, path, catalog or load_catalog())
    target._source = path
    return target


# --- reading -----------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen[key]}); keep only one",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise TargetError(
            f"{path}: no such target file; check the path, or use `--target lab` for the built-in lab"
        )
    if path.is_dir():
        raise TargetError(f"{path}: is a directory, not a target file; give the path of a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TargetError(f"{path}: is not UTF-8 text; a target file is YAML ({_DOCS})") from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise TargetError(f"{path}: cannot be read ({reason}); check its permissions") from None
    try:
        documents = list(yaml.load_all(text, Loader=_UniqueKeyLoader))
    except yaml.MarkedYAMLError as exc:
        raise TargetError(_yaml_message(path, exc)) from None
    except yaml.YAMLError as exc:
        raise TargetError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    documents = [d for d in documents if d is not None]
    if not documents:
        raise TargetError(
            f"{path}: the file is empty; a target is a YAML mapping with at least "
            f"name, clusters and namespaces ({_DOCS})"
        )
    if len(documents) > 1:
        raise TargetError(
            f"{path}: holds {len(documents)} YAML documents; a target file is exactly one mapping, "
            "remove the extra '---' sections"
        )
    raw = documents[0]
    if not isinstance(raw, dict):
        raise TargetError(
            f"{path}: the top level is {_kind(raw)}; a target is a YAML mapping "
            f"(name:, clusters:, namespaces:, ...) ({_DOCS})"
        )
    return raw


def _yaml_message(path: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = exc.problem or "cannot be parsed"
    if "duplicate key" in problem:
        return f"{where}: {problem}"
    context = f" ({exc.context})" if exc.context else ""
    return (
        f"{where}: invalid YAML: {problem}{context}; fix the syntax there "
        "(indentation, a ':' after each key, matching quotes and brackets)"
    )


# --- schema errors -----------------------------------------------------------

_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _describe(exc: ValidationError, raw: Mapping[str, Any]) -> str:
    """The first schema error as ``<field>: <problem>; <fix>`` (+ how many more)."""
    # An unknown key is usually a misspelt known one, which also shows up as
    # "missing"; naming the unknown key (with a suggestion) is the better fix.
    errors = sorted(
        exc.errors(include_url=False),
        key=lambda e: e["type"] not in ("extra_forbidden", "invalid_key"),
    )
    err = errors[0]
    loc = tuple(err["loc"])
    path = _format_loc(loc, raw)
    kind = err["type"]
    secret = any("token" in str(part) for part in loc)
    shown = "" if secret or err.get("input") is None else f" {_show(err.get('input'))}"
    if kind == "missing":
        text = f"{path}: is required but missing; add `{loc[-1]}:` ({_DOCS})"
    elif kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        text = (
            f"{path}: unknown key {str(loc[-1])!r}{mean}; remove it — allowed here: "
            f"{', '.join(allowed)}"
        )
    elif kind == "invalid_key":
        parent = _format_loc(loc[:-1], raw) if len(loc) > 1 else "(top level)"
        text = (
            f"{parent}: key {loc[-1]!r} is not a name; keys are words like "
            f"{', '.join(_allowed_keys(loc[:-1])[:3]) or 'name'} ({_DOCS})"
        )
    elif kind in _EXPECTED:
        text = (
            f"{path}: expected {_EXPECTED[kind]}, got {_kind(err.get('input'))}{shown}; "
            f"write {_EXPECTED[kind]} there"
        )
    elif kind == "too_short":
        text = f"{path}: must not be empty; list at least one item ({_DOCS})"
    elif kind == "string_pattern_mismatch" and (err.get("ctx") or {}).get(
        "pattern"
    ) == NON_BLANK_PATTERN:
        text = f"{path}:{shown} is blank or has spaces around it; write the value without them"
    elif kind == "string_pattern_mismatch":
        text = (
            f"{path}:{shown} is not a valid name; use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    elif kind == "string_too_long":
        text = f"{path}: is too long; {err['msg'].lower()}"
    elif kind == "value_error":
        text = f"{path}: {err['ctx']['error']}"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        text = f"{path}:{shown} is out of range; {err['msg'].lower()}"
    else:
        text = f"{path}: {err['msg']}; fix the value ({_DOCS})"
    if len(errors) > 1:
        text += f" (+{len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return text


def _format_loc(loc: Sequence[int | str], raw: Mapping[str, Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if len(loc) >= 2 and loc[0] == "clusters" and isinstance(loc[1], int):
        clusters = raw.get("clusters")
        if isinstance(clusters, list) and loc[1] < len(clusters) and isinstance(clusters[loc[1]], dict):
            name = clusters[loc[1]].get("name")
            if isinstance(name, str):
                out += f" (cluster {name})"
    return out or "(top level)"


def _allowed_keys(loc: Sequence[int | str]) -> list[str]:
    """The keys the model at ``loc`` accepts (walking Target's annotations)."""
    current: Any = Target
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            current = get_args(current)[0] if get_origin(current) is list else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field else None
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            current = None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``; ``Annotated[X, ...]`` → ``X`` (repeatedly)."""
    while True:
        origin, args = get_origin(annotation), get_args(annotation)
        if origin is Annotated:
            annotation = args[0]
            continue
        non_none = [a for a in args if a is not type(None)]
        if origin in (Union, UnionType) and len(non_none) == 1:
            annotation = non_none[0]
            continue
        return annotation


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- checks across fields ----------------------------------------------------


def _check_across(target: Target, path: Path, catalog: Catalog) -> None:
    def fail(where: str, message: str) -> TargetError:
        return TargetError(f"{path}: {where}: {message}")

    first_at: dict[str, int] = {}
    seen_contexts: dict[tuple[Path | None, str], str] = {}
    for i, cluster in enumerate(target.clusters):
        if cluster.name in first_at:
            raise fail(
                f"clusters[{i}].name",
                f"duplicate cluster name {cluster.name!r} (also clusters[{first_at[cluster.name]}]); "
                "give each cluster a unique name",
            )
        first_at[cluster.name] = i
        key = (cluster.kubeconfig, cluster.context)
        if key in seen_contexts:
            raise fail(
                f"clusters[{i}].context (cluster {cluster.name})",
                f"context {cluster.context!r} is already used by cluster {seen_contexts[key]}; "
                "each cluster needs its own context",
            )
        seen_contexts[key] = cluster.name
        if cluster.kubeconfig is not None:
            _check_context(cluster.kubeconfig, cluster.context, f"clusters[{i}]", cluster.name, fail)

    for i, namespace in enumerate(target.namespaces):
        if namespace in target.namespaces[:i]:
            raise fail(f"namespaces[{i}]", f"namespace {namespace!r} is listed twice; list it once")
    for i, service in enumerate(target.services):
        if service.namespace not in target.namespaces:
            raise fail(
                f"services[{i}].namespace",
                f"service {service.name} is in namespace {service.namespace!r}, which is not under "
                f"test; add it to namespaces: ({', '.join(target.namespaces)})",
            )
    for cluster_name in target.destructive.allowed:
        if cluster_name not in first_at:
            raise fail(
                f"destructive.allowed.{cluster_name}",
                f"no cluster named {cluster_name!r}; use one of {', '.join(first_at)}",
            )

    _check_thresholds(target, catalog, path)
    known = [f.name for f in dataclass_fields(Timeouts)]
    for name, seconds in target.timeouts.items():
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise fail(f"timeouts.{name}", f"unknown timeout{mean}; known: {', '.join(known)}")
        if not seconds > 0:
            raise fail(f"timeouts.{name}", f"{seconds:g} must be a number of seconds greater than 0")


def _check_context(
    kubeconfig: Path, context: str, where: str, cluster: str, fail: _Fail
) -> None:
    try:
        config = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise fail(
            f"{where}.kubeconfig (cluster {cluster})",
            f"{kubeconfig} is not a readable kubeconfig ({exc.__class__.__name__}); fix or replace it",
        ) from None
    contexts = config.get("contexts") if isinstance(config, dict) else None
    names = [c.get("name") for c in contexts or [] if isinstance(c, dict)]
    if context not in names:
        listed = ", ".join(str(n) for n in names) or "none"
        raise fail(
            f"{where}.context (cluster {cluster})",
            f"context {context!r} is not in kubeconfig {kubeconfig} (it has: {listed}); "
            "fix the context name or point kubeconfig: at the right file",
        )


def _check_thresholds(target: Target, catalog: Catalog, path: Path) -> None:
    for guarantee_id, body in target.thresholds.items():
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise TargetError(
                f"{path}: thresholds.{guarantee_id}.reason: expected a string, got {_kind(reason)}; "
                "write the reason as text in quotes"
            )
    try:
        catalog.check_overrides(target.threshold_overrides)
    except OverrideRejected as exc:
        raise TargetError(f"{path}: {exc}") from None
