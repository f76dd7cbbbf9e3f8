"""Switches that break the control plane and the gateways: istiod, the east-west
gateways, the remote secrets and the proxies' own health."""

from __future__ import annotations

__all__ = ["BREAKS", "CASCADES", "register"]

BREAKS: dict[str, frozenset[str]] = {}
"""Which guarantees each switch of this module must violate (and no other)."""

CASCADES: dict[str, frozenset[str]] = {}
"""Guarantees a switch of this module may also violate, because their traffic passes
through its fault."""


def register() -> None:
    """Register this module's switches with the lab CLI."""
