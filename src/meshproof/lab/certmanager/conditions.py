"""Status conditions as cert-manager keeps them (``pkg/api/util/conditions.go``).

``lastTransitionTime`` changes only when the status flips; reason, message and
observedGeneration are updated in place.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from meshproof.lab.certmanager.durations import format_time

__all__ = ["condition", "same_conditions", "set_condition", "without_condition"]

Obj = dict[str, Any]


def condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def set_condition(conditions: list[Obj], kind: str, status: str, reason: str, message: str,
                  *, generation: int, now: datetime.datetime) -> list[Obj]:
    """A copy of ``conditions`` with ``kind`` set."""
    out = copy.deepcopy(conditions)
    for c in out:
        if c.get("type") == kind:
            if c.get("status") != status:
                c["lastTransitionTime"] = format_time(now)
            c.update({"status": status, "reason": reason, "message": message,
                      "observedGeneration": generation})
            return out
    out.append({"type": kind, "status": status, "reason": reason, "message": message,
                "lastTransitionTime": format_time(now), "observedGeneration": generation})
    return out


def without_condition(conditions: list[Obj], kind: str) -> list[Obj]:
    return [copy.deepcopy(c) for c in conditions if c.get("type") != kind]


def same_conditions(a: list[Obj], b: list[Obj]) -> bool:
    """Equal but for ``lastTransitionTime`` (a rewrite that changes nothing is skipped)."""
    def key(conds: list[Obj]) -> list[tuple[Any, ...]]:
        return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message"),
                       c.get("observedGeneration")) for c in conds)
    return key(a) == key(b)
