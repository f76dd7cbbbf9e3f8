"""Target files: which mesh a run proves, and how far it may go.

``load_target("lab")`` resolves the built-in lab's generated file;
``load_target(path)`` reads a YAML target file. Every problem is a
``TargetError`` whose message is one line naming the file, the field, what is
wrong and how to fix it. The format is documented in docs/targets.md.
"""

from __future__ import annotations

from meshproof.target.loading import (
    LAB_TARGET_NAME,
    lab_target_path,
    load_target,
    resolve_target_path,
)
from meshproof.target.schema import (
    ClusterSettings,
    ConsulSettings,
    DestructiveSettings,
    ProbeSettings,
    PrometheusSettings,
    ServiceRef,
    Target,
)

__all__ = [
    "LAB_TARGET_NAME",
    "ClusterSettings",
    "ConsulSettings",
    "DestructiveSettings",
    "ProbeSettings",
    "PrometheusSettings",
    "ServiceRef",
    "Target",
    "lab_target_path",
    "load_target",
    "resolve_target_path",
]
