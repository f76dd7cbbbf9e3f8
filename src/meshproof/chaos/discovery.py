"""How a drill module's activities are listed for ``chaos discover``."""

from __future__ import annotations

from collections.abc import Collection

from chaoslib.discovery.discover import discover_activities
from chaoslib.types import DiscoveredActivities

__all__ = ["typed_activities"]


def typed_activities(module: str, probes: Collection[str],
                     hidden: Collection[str] = ()) -> list[DiscoveredActivities]:
    """The exported functions of ``module``: those named in ``probes`` typed as probes, the
    rest as actions; ``load_exported_activities`` and ``hidden`` (helpers that are not
    activities) left out."""
    left_out = {"load_exported_activities", *hidden}
    activities = discover_activities(module, "action")
    for activity in activities:
        if activity.get("name") in probes:
            activity["type"] = "probe"
    return [a for a in activities if a.get("name") not in left_out]
