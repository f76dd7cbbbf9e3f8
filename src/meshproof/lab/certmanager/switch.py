"""Registers the ``cert-expiring`` break switch with ``meshproof lab break`` / ``heal``.

Importing this module is what makes the switch known to :mod:`meshproof.lab.cli`.
"""

from __future__ import annotations

from meshproof.lab.certmanager.breaks import apply_cert_expiring, revert_cert_expiring
from meshproof.lab.cli import Switch, register_switch
from meshproof.lab.state import LabPaths

__all__ = ["CERT_EXPIRING"]


def _apply(paths: LabPaths) -> None:
    apply_cert_expiring(paths.root)


def _revert(paths: LabPaths) -> None:
    revert_cert_expiring(paths.root)


CERT_EXPIRING = Switch(
    name="cert-expiring",
    description=("the ingress certificate (istio-system/tls-cert) is left 5 days from expiry "
                 "and every renewal through a CA issuer fails"),
    apply=_apply,
    revert=_revert,
)

register_switch(CERT_EXPIRING)
