"""Switches that break the mesh's configuration: identities, routes, ingress and
objects that fail analysis.

Each one is a change an operator could make with ``kubectl apply`` or
``istioctl install``: a trust domain moved on one cluster, a route's weights
edited, a Gateway without its redirect, a VirtualService applied before its
service exists.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshproof.errors import LabError
from meshproof.lab.cli import Switch, register_switch
from meshproof.lab.state import LabPaths
from meshproof.lab.switches.api import CONTEXTS, api, custom, forget, load, plain, save
from meshproof.lab.switches.network import restart_mesh

__all__ = ["BREAKS", "CASCADES", "register"]

BREAKS: dict[str, frozenset[str]] = {
    "trust-domain-alias": frozenset({"MTLS-IDENTITY"}),
    "route-weights": frozenset({"ROUTING"}),
    "no-https-redirect": frozenset({"INGRESS"}),
    "dangling-route": frozenset({"CONFIG-VALID"}),
}
"""Which guarantees each switch of this module must violate (and no other)."""

CASCADES: dict[str, frozenset[str]] = {}
"""Guarantees a switch of this module may also violate, because their traffic passes
through its fault."""

MOVED_CLUSTER = "gcp-gke"
"""The cluster whose meshConfig.trustDomain ``trust-domain-alias`` changes."""
MOVED_TRUST_DOMAIN = "gcp-gke.local"
DRIFTED_WEIGHTS = (50, 50)
"""``route-weights``: catalog's split as a canary promotion step would leave it."""
DANGLING_ROUTE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "production"},
    "spec": {"hosts": ["reviews"],
             "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]},
}
"""A route applied before its service was deployed: ``istioctl analyze`` reports IST0101
(ReferencedResourceNotFound); no request of the suite goes to ``reviews``."""


def _failed(what: str, context: str, exc: ApiException) -> LabError:
    return LabError(f"{what} on {context}: {exc.status} {exc.reason}")


# -- trust-domain-alias --------------------------------------------------------------------

def _read_mesh(paths: LabPaths, context: str) -> str:
    core = client.CoreV1Api(api(paths, context))
    try:
        config_map = plain(core.read_namespaced_config_map("istio", "istio-system"))
    except ApiException as exc:
        raise _failed("ConfigMap istio-system/istio", context, exc) from exc
    return str((config_map.get("data") or {}).get("mesh", ""))


def _write_mesh(paths: LabPaths, context: str, text: str) -> None:
    client.CoreV1Api(api(paths, context)).patch_namespaced_config_map(
        "istio", "istio-system", {"data": {"mesh": text}})


def _with_trust_domain(text: str, trust_domain: str | None, aliases: list[str]) -> str:
    """The mesh config ``text`` with its trust domain (if given) and more aliases."""
    mesh = yaml.safe_load(text) or {}
    if trust_domain is not None:
        mesh["trustDomain"] = trust_domain
    known = list(mesh.get("trustDomainAliases") or [])
    mesh["trustDomainAliases"] = known + [a for a in aliases if a not in known]
    return yaml.safe_dump(mesh, sort_keys=False)


def _trust_domain_of(text: str) -> str:
    return str((yaml.safe_load(text) or {}).get("trustDomain", "cluster.local"))


def _trust_domain_moved(paths: LabPaths) -> None:
    """gcp-gke moves to its own trust domain the way a trust domain migration starts:
    every cluster lists the other domain as an alias, so handshakes and SAN checks still
    succeed; gcp-gke's istiod restarts to sign under the new domain, then its workloads."""
    texts = {context: _read_mesh(paths, context) for context in CONTEXTS}
    save(paths, "trust-domain-alias", texts)
    texts = load(paths, "trust-domain-alias")
    own = _trust_domain_of(texts[MOVED_CLUSTER])
    # The clusters that stay first: they accept the new domain before anyone presents it.
    for context in sorted(CONTEXTS, key=lambda c: c == MOVED_CLUSTER):
        moved = context == MOVED_CLUSTER
        _write_mesh(paths, context, _with_trust_domain(
            texts[context], MOVED_TRUST_DOMAIN if moved else None,
            [own] if moved else [MOVED_TRUST_DOMAIN]))
    restart_mesh(paths, MOVED_CLUSTER)


def _trust_domain_back(paths: LabPaths) -> None:
    """The migration run backwards: gcp-gke signs under its own domain again while every
    cluster still accepts both; only then do the aliases go."""
    texts = load(paths, "trust-domain-alias")
    if texts is None:
        return
    _write_mesh(paths, MOVED_CLUSTER, _with_trust_domain(
        texts[MOVED_CLUSTER], _trust_domain_of(texts[MOVED_CLUSTER]), [MOVED_TRUST_DOMAIN]))
    restart_mesh(paths, MOVED_CLUSTER)
    for context, text in texts.items():
        _write_mesh(paths, context, text)
    forget(paths, "trust-domain-alias")


# -- route-weights and no-https-redirect: one spec field of an Istio object edited ----------

@dataclass(frozen=True, slots=True)
class _SpecField:
    """One list under ``spec`` of a networking.istio.io object, read and replaced whole."""

    kind: str
    namespace: str
    name: str
    key: str

    @property
    def what(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    def read(self, paths: LabPaths, context: str) -> list[dict[str, Any]]:
        try:
            obj = plain(custom(paths, context).get_namespaced_custom_object(
                "networking.istio.io", "v1", self.namespace, self.kind.lower() + "s",
                self.name))
        except ApiException as exc:
            raise _failed(self.what, context, exc) from exc
        return list((obj.get("spec") or {}).get(self.key) or [])

    def write(self, paths: LabPaths, context: str, value: list[dict[str, Any]]) -> None:
        # A merge patch replaces a list whole.
        custom(paths, context).patch_namespaced_custom_object(
            "networking.istio.io", "v1", self.namespace, self.kind.lower() + "s", self.name,
            {"spec": {self.key: value}})


CATALOG_ROUTES = _SpecField("VirtualService", "production", "catalog", "http")
PUBLIC_SERVERS = _SpecField("Gateway", "istio-system", "public-gateway", "servers")
Edit = Callable[[list[dict[str, Any]]], bool]
"""Changes a copy of the field in place; False when there was nothing to change."""


def _edited(switch: str, field: _SpecField, edit: Edit, missing: str
            ) -> Callable[[LabPaths], None]:
    def apply(paths: LabPaths) -> None:
        originals = {context: field.read(paths, context) for context in CONTEXTS}
        save(paths, switch, originals)
        for context, original in originals.items():
            changed = copy.deepcopy(original)
            if not edit(changed):
                raise LabError(f"{switch}: {field.what} on {context} has {missing}")
            field.write(paths, context, changed)
    return apply


def _restored(switch: str, field: _SpecField) -> Callable[[LabPaths], None]:
    def revert(paths: LabPaths) -> None:
        saved = load(paths, switch)
        if saved is None:
            return
        for context, value in saved.items():
            field.write(paths, context, value)
        forget(paths, switch)
    return revert


def _drift_weights(http: list[dict[str, Any]]) -> bool:
    """The first unmatched route with several destinations gets ``DRIFTED_WEIGHTS``."""
    split = [h for h in http if not h.get("match") and len(h.get("route") or []) > 1]
    for entry, weight in zip(split[0]["route"] if split else [], DRIFTED_WEIGHTS,
                             strict=False):
        entry["weight"] = weight
    return bool(split)


def _drop_redirect(servers: list[dict[str, Any]]) -> bool:
    dropped = False
    for server in servers:
        tls = server.get("tls") or {}
        if tls.get("httpsRedirect"):
            del tls["httpsRedirect"]
            if not tls:
                del server["tls"]
            dropped = True
    return dropped


# -- dangling-route ------------------------------------------------------------------------

def _dangling_applied(paths: LabPaths) -> None:
    meta = DANGLING_ROUTE["metadata"]
    for context in CONTEXTS:
        try:
            custom(paths, context).create_namespaced_custom_object(
                "networking.istio.io", "v1", meta["namespace"], "virtualservices",
                copy.deepcopy(DANGLING_ROUTE))
        except ApiException as exc:
            if exc.status != 409:
                raise _failed(f"VirtualService {meta['namespace']}/{meta['name']}", context,
                              exc) from exc


def _dangling_deleted(paths: LabPaths) -> None:
    meta = DANGLING_ROUTE["metadata"]
    for context in CONTEXTS:
        try:
            custom(paths, context).delete_namespaced_custom_object(
                "networking.istio.io", "v1", meta["namespace"], "virtualservices", meta["name"])
        except ApiException as exc:
            if exc.status != 404:
                raise _failed(f"VirtualService {meta['namespace']}/{meta['name']}", context,
                              exc) from exc


def register() -> None:
    """Register this module's switches with the lab CLI."""
    register_switch(Switch(
        "trust-domain-alias",
        f"{MOVED_CLUSTER}'s meshConfig.trustDomain moves to {MOVED_TRUST_DOMAIN}, with "
        "trustDomainAliases both ways so handshakes succeed; its workloads restart with "
        "identities outside the mesh's single trust domain",
        _trust_domain_moved, _trust_domain_back))
    register_switch(Switch(
        "route-weights",
        "catalog's VirtualService split is edited to "
        f"{DRIFTED_WEIGHTS[0]}/{DRIFTED_WEIGHTS[1]} while the runbook promises 90/10",
        _edited("route-weights", CATALOG_ROUTES, _drift_weights, "no weighted split"),
        _restored("route-weights", CATALOG_ROUTES)))
    register_switch(Switch(
        "no-https-redirect",
        "the public Gateway's http server loses tls.httpsRedirect: http is served, "
        "not redirected",
        _edited("no-https-redirect", PUBLIC_SERVERS, _drop_redirect, "no httpsRedirect to drop"),
        _restored("no-https-redirect", PUBLIC_SERVERS)))
    register_switch(Switch(
        "dangling-route",
        "a VirtualService production/reviews routes to a service that does not exist "
        "(istioctl analyze: IST0101)",
        _dangling_applied, _dangling_deleted))
