"""PeerAuthentication and AuthorizationPolicy, resolved for one workload as istiod does.

PeerAuthentication precedence (FACTS.md "mTLS and authorization"): a policy with a
workload selector beats the namespace-wide one, which beats the mesh-wide one in
the root namespace; ``UNSET`` inherits; with nothing set the mode is PERMISSIVE.
``portLevelMtls`` applies only on a policy with a selector.
"""

from __future__ import annotations

from typing import Literal

from meshproof.lab.istiod.view import (
    MeshView,
    Obj,
    labels_of,
    name_of,
    namespace_of,
    selector_matches_labels,
)
from meshproof.lab.mesh.config import AuthorizationPolicy, AuthzRule, MtlsMode

__all__ = ["authorization_policies_for", "mtls_mode_for_port"]

_MODES = ("STRICT", "PERMISSIVE", "DISABLE")


def _oldest_first(policies: list[Obj]) -> list[Obj]:
    # Istio resolves ties between equally specific policies by the oldest one.
    return sorted(policies, key=lambda p: ((p.get("metadata") or {}).get(
        "creationTimestamp", ""), name_of(p)))


def _mode(policy: Obj, port: int | None) -> str:
    spec = policy.get("spec") or {}
    if port is not None and spec.get("selector"):
        level = (spec.get("portLevelMtls") or {}).get(str(port)) or (
            spec.get("portLevelMtls") or {}).get(port)
        if level and level.get("mode", "UNSET") != "UNSET":
            return str(level["mode"])
    return str((spec.get("mtls") or {}).get("mode", "UNSET"))


def mtls_mode_for_port(view: MeshView, namespace: str, pod_labels: dict[str, str],
                       port: int) -> MtlsMode:
    """The effective inbound mTLS mode of ``port`` of a workload."""
    candidates = [p for p in view.peer_authentications]
    workload = _oldest_first([
        p for p in candidates if namespace_of(p) == namespace
        and (p.get("spec") or {}).get("selector")
        and selector_matches_labels(((p.get("spec") or {}).get("selector") or {}).get(
            "matchLabels"), pod_labels)
    ])
    namespace_wide = _oldest_first([
        p for p in candidates if namespace_of(p) == namespace
        and not (p.get("spec") or {}).get("selector")
    ])
    mesh_wide = _oldest_first([
        p for p in candidates if namespace_of(p) == view.mesh.root_namespace
        and not (p.get("spec") or {}).get("selector")
    ])
    for level, with_port in ((workload, True), (namespace_wide, False), (mesh_wide, False)):
        if level:
            mode = _mode(level[0], port if with_port else None)
            if mode in _MODES:
                return mode  # type: ignore[return-value]
    return "PERMISSIVE"


def _rule(rule: Obj) -> list[AuthzRule]:
    """One AuthorizationPolicy rule; each (from, to) combination becomes a lab rule."""
    sources = [f.get("source") or {} for f in rule.get("from") or []] or [{}]
    operations = [t.get("operation") or {} for t in rule.get("to") or []] or [{}]
    return [
        AuthzRule(
            principals=list(src.get("principals") or []),
            namespaces=list(src.get("namespaces") or []),
            paths=list(op.get("paths") or []),
            methods=list(op.get("methods") or []),
        )
        for src in sources for op in operations
    ]


def authorization_policies_for(view: MeshView, namespace: str,
                               pod_labels: dict[str, str]) -> list[AuthorizationPolicy]:
    """ALLOW and DENY policies that select the workload (its namespace's and the root's)."""
    out: list[AuthorizationPolicy] = []
    for policy in view.authorization_policies:
        ns = namespace_of(policy)
        if ns not in (namespace, view.mesh.root_namespace):
            continue
        spec = policy.get("spec") or {}
        selector = (spec.get("selector") or {}).get("matchLabels")
        if selector and not selector_matches_labels(selector, pod_labels):
            continue
        action: Literal["ALLOW", "DENY"] = "DENY" if spec.get("action") == "DENY" else "ALLOW"
        if spec.get("action") not in (None, "ALLOW", "DENY"):
            continue  # CUSTOM and AUDIT need an extension provider the lab does not have
        rules = [r for rule in spec.get("rules") or [] for r in _rule(rule)]
        if "rules" in spec and spec["rules"] == [{}]:
            rules = [AuthzRule()]
        out.append(AuthorizationPolicy(name=f"{ns}.{name_of(policy)}", action=action,
                                       rules=rules))
    return out


def pod_labels(pod: Obj) -> dict[str, str]:
    return labels_of(pod)
