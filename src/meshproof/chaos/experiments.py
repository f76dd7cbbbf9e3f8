"""The drill experiments on disk: which guarantees they prove and which faults they apply.

An experiment declares itself to meshproof in a Chaos Toolkit ``extensions`` entry::

    {"name": "meshproof", "guarantees": ["EW-FAILOVER"],
     "faults": {"fault_cluster": ["eastwest-gateway-loss"]}}

``faults`` maps a cluster role (a configuration key of the experiment, filled from
``MESHPROOF_<ROLE>``) to the faults applied in that cluster. The runner reads it to
refuse a drill the target's blast radius does not allow before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import meshproof
from meshproof.errors import ConfigError

__all__ = [
    "ROLES",
    "DrillExperiment",
    "default_experiments_dir",
    "experiments_for",
    "load_drill_experiment",
    "role_assignments",
]

ROLES = ("fault_cluster", "client_cluster")
"""The cluster roles an experiment's configuration may use."""
EXTENSION = "meshproof"


@dataclass(frozen=True, slots=True)
class DrillExperiment:
    """One experiment file and what it declares."""

    path: Path
    title: str
    guarantees: tuple[str, ...]
    faults: Mapping[str, tuple[str, ...]]
    """Role → faults applied in the cluster of that role."""

    def faults_by_cluster(self, roles: Mapping[str, str]) -> dict[str, list[str]]:
        """The faults per cluster once the roles are given clusters."""
        out: dict[str, list[str]] = {}
        for role, names in self.faults.items():
            out.setdefault(roles[role], []).extend(n for n in names
                                                   if n not in out.get(roles[role], []))
        return out


def default_experiments_dir(root: Path | None = None) -> Path:
    """``experiments/`` in ``root`` (the project root), else next to the installed sources."""
    here = (root or Path.cwd()) / "experiments"
    if here.is_dir():
        return here.resolve()
    return Path(meshproof.__file__).resolve().parents[2] / "experiments"


def load_drill_experiment(path: Path) -> DrillExperiment:
    """Read ``path`` and its meshproof extension; a file without one is a ``ConfigError``."""
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"experiment {path}: cannot read it as JSON: {exc}") from exc
    ext = next((e for e in doc.get("extensions") or []
                if isinstance(e, dict) and e.get("name") == EXTENSION), None)
    if ext is None:
        raise ConfigError(f"experiment {path}: no extensions entry named {EXTENSION!r} "
                          "declaring its guarantees and faults")
    faults = {str(role): tuple(str(f) for f in names)
              for role, names in dict(ext.get("faults") or {}).items()}
    unknown = sorted(set(faults) - set(ROLES))
    if unknown:
        raise ConfigError(f"experiment {path}: unknown cluster role(s) {', '.join(unknown)}; "
                          f"roles are {', '.join(ROLES)}")
    return DrillExperiment(path=path, title=str(doc.get("title") or path.stem),
                           guarantees=tuple(str(g) for g in ext.get("guarantees") or ()),
                           faults=faults)


def experiments_for(guarantee_ids: Iterable[str], directory: Path) -> list[DrillExperiment]:
    """The experiments in ``directory`` that prove any of ``guarantee_ids``."""
    wanted = set(guarantee_ids)
    found = [load_drill_experiment(p) for p in sorted(directory.glob("*.json"))]
    return [e for e in found if wanted & set(e.guarantees)]


def role_assignments(clusters: tuple[str, ...]) -> list[dict[str, str]]:
    """One drill per cluster as the fault cluster; its client is the next cluster (in the
    target's order, wrapping), so every cluster is both faulted and a client once."""
    if len(clusters) < 2:
        raise ConfigError("a drill needs at least two clusters (one faulted, one client); "
                          f"the target has {', '.join(clusters) or 'none'}")
    return [{"fault_cluster": c, "client_cluster": clusters[(i + 1) % len(clusters)]}
            for i, c in enumerate(clusters)]
