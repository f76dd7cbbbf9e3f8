"""Every manifest under clusters/ parses and validates: built-in kinds against the Kubernetes
schemas (kubernetes-validate), Istio / cert-manager / MetalLB / kind objects and the Consul
values against the schemas pinned in clusters/schemas/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from tests.support.cluster_manifests import (
    CLUSTERS_DIR,
    SCHEMAS_DIR,
    Doc,
    documents,
    manifest_files,
    objects,
)

pytestmark = pytest.mark.static

# kubernetes-validate ships schemas up to 1.37; the kind node image is 1.36.
KUBERNETES_VERSION = "1.36.0"


def _load_schemas() -> tuple[dict[tuple[str, str], Any], dict[str, Any], Registry]:
    by_kind: dict[tuple[str, str], Any] = {}
    by_path: dict[str, Any] = {}
    registry: Registry = Registry()
    for path in sorted(SCHEMAS_DIR.glob("*.yaml")):
        schema = yaml.safe_load(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        registry = registry.with_resource(path.name, Resource.from_contents(schema))
        for target in schema.get("x-applies-to", []):
            if "path" in target:
                by_path[target["path"]] = schema
            else:
                by_kind[(target["apiVersion"], target["kind"])] = schema
    return by_kind, by_path, registry


SCHEMAS_BY_KIND, SCHEMAS_BY_PATH, REGISTRY = _load_schemas()


def _errors(schema: Any, body: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, registry=REGISTRY)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator.iter_errors(body)
    ]


def _schema_for(doc: Doc) -> Any | None:
    return SCHEMAS_BY_KIND.get((doc.api_version, doc.kind))


def _is_builtin(doc: Doc) -> bool:
    group = doc.api_version.rpartition("/")[0]
    return (
        "/" not in doc.api_version
        or group.endswith(".k8s.io")
        or group
        in {
            "apps",
            "batch",
            "policy",
            "autoscaling",
        }
    )


def test_there_are_manifests() -> None:
    kinds = {d.kind for d in objects()}
    assert {"Deployment", "Service", "Gateway", "VirtualService", "DestinationRule"} <= kinds


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(CLUSTERS_DIR)))
def test_file_parses_as_yaml(path: Path) -> None:
    docs = list(documents(path))
    assert docs, f"{path} has no YAML document"


@pytest.mark.parametrize("doc", objects(), ids=lambda d: f"{d.where}:{d.kind}/{d.name}")
def test_object_validates(doc: Doc) -> None:
    schema = _schema_for(doc)
    if schema is not None:
        errors = _errors(schema, doc.body)
        assert not errors, f"{doc.where} {doc.kind}/{doc.name}: " + "; ".join(errors)
        return
    assert _is_builtin(doc), (
        f"{doc.where}: no schema for {doc.api_version} {doc.kind}; "
        "add one to clusters/schemas/ (x-applies-to)"
    )
    try:
        kubernetes_validate.validate(doc.body, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        caught = getattr(exc, "caught", exc)
        where = "/".join(str(p) for p in getattr(caught, "absolute_path", []))
        pytest.fail(
            f"{doc.where} {doc.kind}/{doc.name}: {where}: {getattr(caught, 'message', exc)}"
        )


def test_consul_values_validate() -> None:
    path = CLUSTERS_DIR / "consul" / "values.yaml"
    errors = _errors(SCHEMAS_BY_PATH["consul/values.yaml"], yaml.safe_load(path.read_text()))
    assert not errors, "; ".join(errors)


def test_every_schema_is_used() -> None:
    """A schema no manifest needs is a schema nobody checks against reality."""
    used = {id(SCHEMAS_BY_KIND[(d.api_version, d.kind)]) for d in objects() if _schema_for(d)}
    unused = sorted({s["$id"] for s in SCHEMAS_BY_KIND.values() if id(s) not in used})
    assert not unused, f"schemas no manifest under clusters/ uses: {unused}"


# --- the schemas catch what they are for (each check is seen to fail) ---------------------


def _one(kind: str, name: str) -> dict[str, Any]:
    for doc in objects():
        if doc.kind == kind and doc.name == name:
            return yaml.safe_load(yaml.safe_dump(doc.body))  # a deep copy
    raise AssertionError(f"no {kind}/{name} under clusters/")


def _kind_schema(body: dict[str, Any]) -> Any:
    return SCHEMAS_BY_KIND[(body["apiVersion"], body["kind"])]


@pytest.mark.parametrize(
    ("kind", "name", "mutate", "expected"),
    [
        (
            "DestinationRule",
            "catalog",
            lambda b: b["spec"]["trafficPolicy"]["outlierDetection"].update(consecutiveErrors=5),
            "consecutiveErrors",
        ),
        (
            "PeerAuthentication",
            "default",
            lambda b: b["spec"]["mtls"].update(mode="STRICTEST"),
            "STRICTEST",
        ),
        (
            "Gateway",
            "cross-network-gateway",
            lambda b: b["spec"]["servers"][0]["tls"].update(mode="AUTO"),
            "AUTO",
        ),
        (
            "Gateway",
            "public-gateway",
            # SIMPLE without a credential: nothing to serve.
            lambda b: b["spec"]["servers"][1]["tls"].pop("credentialName"),
            "'mode': 'SIMPLE'",
        ),
        (
            "VirtualService",
            "catalog",
            lambda b: b["spec"]["http"][0]["route"][0].update(weight=150),
            "150",
        ),
        (
            "Certificate",
            "tls-cert",
            lambda b: b["spec"]["privateKey"].update(algorithm="DSA"),
            "DSA",
        ),
        (
            "Cluster",
            "aws-eks",
            lambda b: b["nodes"][0].update(image="kindest/node:latest"),
            "latest",
        ),
    ],
)
def test_schema_rejects_a_broken_copy(kind: str, name: str, mutate: Any, expected: str) -> None:
    body = _one(kind, name)
    assert not _errors(_kind_schema(body), body)
    mutate(body)
    errors = _errors(_kind_schema(body), body)
    assert errors and any(expected in e for e in errors), errors


def test_kubernetes_schema_rejects_a_misspelt_field() -> None:
    body = _one("Service", "helloworld")
    body["spec"]["portz"] = body["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)


def test_no_manifest_uses_consecutive_errors() -> None:
    """The runbook's consecutiveErrors is ignored since 2020; only consecutive5xxErrors counts."""
    offenders = [
        str(p.relative_to(CLUSTERS_DIR))
        for p in manifest_files()
        if re.search(r"^\s*consecutiveErrors\s*:", p.read_text(), re.MULTILINE)
    ]
    assert not offenders, f"consecutiveErrors (ignored by Istio) in: {offenders}"
