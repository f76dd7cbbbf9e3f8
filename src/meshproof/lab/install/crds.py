"""Istio's CustomResourceDefinitions as a lab cluster serves them.

Names, short names, categories and served versions follow istio/istio
``manifests/charts/base/files/crd-all.gen.yaml`` (v1 stored; v1beta1 and, for
networking, v1alpha3 still served). The lab does not validate the spec
against the OpenAPI schema (``x-kubernetes-preserve-unknown-fields``): Istio's
own validation webhook is not part of the lab.
"""

from __future__ import annotations

from typing import Any

__all__ = ["crd", "istio_crds"]

Obj = dict[str, Any]

_NETWORKING = [
    ("VirtualService", "virtualservices", ["vs"]),
    ("DestinationRule", "destinationrules", ["dr"]),
    ("Gateway", "gateways", ["gw"]),
    ("ServiceEntry", "serviceentries", ["se"]),
    ("Sidecar", "sidecars", []),
    ("WorkloadEntry", "workloadentries", ["we"]),
    ("WorkloadGroup", "workloadgroups", ["wg"]),
    ("EnvoyFilter", "envoyfilters", []),
]
_SECURITY = [
    ("PeerAuthentication", "peerauthentications", ["pa"]),
    ("AuthorizationPolicy", "authorizationpolicies", ["ap"]),
    ("RequestAuthentication", "requestauthentications", ["ra"]),
]


def crd(group: str, kind: str, plural: str, short_names: list[str], versions: list[str],
        *, categories: list[str], scope: str = "Namespaced", status: bool = True) -> Obj:
    """A CustomResourceDefinition that serves ``versions`` (the first is stored)."""
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}",
                     "labels": {"app": "istio-pilot", "chart": "istio",
                                "heritage": "Tiller", "release": "istio"}},
        "spec": {
            "group": group,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower(), "shortNames": short_names,
                      "categories": categories},
            "scope": scope,
            "versions": [
                {"name": v, "served": True, "storage": i == 0, "schema": schema,
                 **({"subresources": {"status": {}}} if status else {})}
                for i, v in enumerate(versions)
            ],
        },
    }


def istio_crds() -> list[Obj]:
    out = [crd("networking.istio.io", kind, plural, short, ["v1", "v1beta1", "v1alpha3"],
               categories=["istio-io", "networking-istio-io"])
           for kind, plural, short in _NETWORKING]
    out += [crd("security.istio.io", kind, plural, short, ["v1", "v1beta1"],
                categories=["istio-io", "security-istio-io"])
            for kind, plural, short in _SECURITY]
    return out
