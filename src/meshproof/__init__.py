"""meshproof: proves that a two-cluster Istio mesh keeps its runbook's promises."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
