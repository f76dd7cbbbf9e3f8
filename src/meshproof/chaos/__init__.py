"""meshproof's Chaos Toolkit extension: the mesh faults, probes and verdicts drills need.

Use it in an experiment as a Python provider, e.g.
``{"type": "python", "module": "meshproof.chaos.actions", "func": "lose_east_west_gateway",
"arguments": {"cluster": "${fault_cluster}"}}``. ``chaos discover meshproof.chaos`` lists
every activity with its arguments and docstring.

- ``meshproof.chaos.actions``: faults (east-west gateway loss, istiod outage, Istio fault
  injection), their ``restore``, the runbook's istiod restart, the run's probe agents,
  background traffic;
- ``meshproof.chaos.probes``: Prometheus SLIs and runbook alerts, probe-agent success
  ratios, Envoy ejection and overflow, proxy sync, circuit-breaker load, and
  ``judge_guarantee`` / ``drill_guarantees_held`` (the catalog's thresholds decide);
- ``meshproof.chaos.backup``: the backup-and-restore drill (export, loss, restore, compare);
- ``meshproof.chaos.alerts``: the ALERTS drill (each runbook alert under its fault);
- ``meshproof.chaos.rotation``: the certificate rotation drill (renewal, workload
  certificates, trust bundles);
- ``meshproof.chaos.consul_loss``: the Consul server loss drill (leader change, catalog).

Every fault is refused unless the target allows it in that cluster; every change is
labelled with the run id and undoable (``meshproof.safety``). The target comes from the
configuration key ``meshproof_target`` or ``$MESHPROOF_TARGET``; see docs/drills.md.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from chaoslib.discovery.discover import (
    discover_actions,
    discover_probes,
    initialize_discovery_result,
)
from chaoslib.types import DiscoveredActivities, Discovery

__all__ = ["__version__", "discover"]

try:
    __version__ = version("meshproof")
except PackageNotFoundError:  # running from a checkout that was not installed
    __version__ = "unknown"


def discover(discover_system: bool = True) -> Discovery:
    """The actions and probes of meshproof's extension, for ``chaos discover``."""
    discovery = initialize_discovery_result("meshproof", __version__, "istio-multicluster")
    discovery["activities"].extend(load_exported_activities())
    return discovery


def load_exported_activities() -> list[DiscoveredActivities]:
    """Every exported action and probe, with its arguments and documentation."""
    from meshproof.chaos import alerts, backup, consul_loss, rotation

    activities: list[DiscoveredActivities] = []
    activities.extend(discover_actions("meshproof.chaos.actions"))
    activities.extend(discover_probes("meshproof.chaos.probes"))
    activities.extend(backup.load_exported_activities())
    activities.extend(alerts.load_exported_activities())
    activities.extend(rotation.load_exported_activities())
    activities.extend(consul_loss.load_exported_activities())
    return activities
