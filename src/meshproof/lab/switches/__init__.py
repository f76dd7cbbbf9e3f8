"""The lab's break switches: each puts the lab into one failure the runbook names.

Every switch makes its failure the way it happens on a real mesh — a changed
mesh object, a broken controller, a foreign CA, a slow network — through the
same Kubernetes API a user would use, or through the lab's own network and
pod controls; none of them tells the suite anything. ``meshproof lab break
NAME`` / ``meshproof lab heal [NAME]`` run them; what each one breaks is in
``SWITCH_BREAKS`` (the negative-control table the tests use).
"""

from __future__ import annotations

from meshproof.lab.switches import config, control, discovery, mesh, network

__all__ = ["SWITCH_BREAKS", "SWITCH_CASCADES", "register_all"]

SWITCH_BREAKS: dict[str, frozenset[str]] = {
    "mtls-permissive": frozenset({"MTLS-STRICT"}),
    "no-outlier-detection": frozenset({"EW-FAILOVER"}),
    "injection-off": frozenset({"INJECTION"}),
    # The runbook's P1 latency alert fires too: that is the same fault seen by the alerts.
    "slow-wan": frozenset({"XC-LATENCY", "ALERTS-QUIET"}),
    "proxy-stale": frozenset({"PROXY-HEALTH"}),
    # The runbook's P0 "mTLS handshake failure rate > 1%" alert fires too.
    "trust-domain-mismatch": frozenset({"MTLS-HANDSHAKE", "ALERTS-QUIET"}),
    "consul-stale": frozenset({"DISCOVERY"}),
    # The runbook's P2 "Certificate expiring < 7 days" alert fires too.
    "cert-expiring": frozenset({"CERT-RENEW", "ALERTS-QUIET"}),
    **control.BREAKS,
    **config.BREAKS,
}
"""Which guarantees each switch must violate (and no other): the fault's own guarantee, and
ALERTS-QUIET where the runbook has an alert for that fault."""


SWITCH_CASCADES: dict[str, frozenset[str]] = {
    # With one cluster's certificates from a foreign root every cross-cluster request
    # fails its handshake; a route whose traffic crosses (the canary service is in both
    # clusters) may then be judged violated too, depending on which endpoints the outlier
    # detector has ejected when the run measures it.
    "trust-domain-mismatch": frozenset({"ROUTING"}),
    **control.CASCADES,
    **config.CASCADES,
}
"""Guarantees a switch may also violate, because their traffic passes through its fault."""


def register_all() -> None:
    mesh.register()
    network.register()
    discovery.register()
    control.register()
    config.register()
    # cert-expiring lives beside the lab's cert-manager, whose break control it uses;
    # importing it registers it.
    import meshproof.lab.certmanager.switch  # noqa: F401
