"""meshproof: proves that a two-cluster Istio mesh keeps its runbook's promises."""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "discover"]

__version__ = "0.1.0"


def discover(discover_system: bool = True) -> Any:
    """The Chaos Toolkit extension's activities, for ``chaos discover --no-install meshproof``."""
    from meshproof.chaos import discover as discover_chaos

    return discover_chaos(discover_system)
