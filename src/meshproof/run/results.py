"""Reading the results file the pytest plugin writes, while it is being written.

``ResultsTail`` returns the complete JSON lines added since the last call;
``ScenarioResult`` is one finished scenario as the runner and the reports use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshproof.run.verdicts import Outcome, verdict_of
from meshproof.sli.verdict import Verdict

__all__ = ["MESH", "ResultsTail", "ScenarioResult"]

MESH = "mesh"
"""The cluster key of a scenario that covers the whole mesh (no ``cluster`` column)."""


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One scenario that ran: what it checked, where, how it ended, and its evidence."""

    nodeid: str
    ids: tuple[str, ...]
    name: str
    cluster: str | None
    outcome: Outcome
    message: str = ""
    fix: str = ""
    errors: tuple[str, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    feature: str = ""
    feature_uri: str = ""
    item: str = ""
    duration_s: float = 0.0
    interrupted_line: int | None = None
    started: str = ""
    finished: str = ""

    @property
    def cluster_key(self) -> str:
        """The cluster the verdict is about, or ``mesh``."""
        return self.cluster or MESH

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.outcome)

    @property
    def could_not_run(self) -> bool:
        """The check itself failed (an unexpected exception): the run is faulty."""
        return self.outcome is Outcome.ERROR

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> ScenarioResult:
        """Parse a ``scenario`` event of the results file."""
        return cls(
            nodeid=str(event["nodeid"]),
            ids=tuple(event.get("ids") or ()),
            name=str(event.get("name") or event["nodeid"]),
            cluster=event.get("cluster") or None,
            outcome=Outcome(event["outcome"]),
            message=str(event.get("message") or ""),
            fix=str(event.get("fix") or ""),
            errors=tuple(event.get("errors") or ()),
            evidence=dict(event.get("evidence") or {}),
            feature=str(event.get("feature") or ""),
            feature_uri=str(event.get("feature_uri") or ""),
            item=str(event.get("item") or ""),
            duration_s=float(event.get("duration_s") or 0.0),
            interrupted_line=event.get("interrupted_line"),
            started=str(event.get("started") or ""),
            finished=str(event.get("finished") or ""),
        )


class ResultsTail:
    """Follows a JSON-lines file another process appends to; partial lines wait."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[dict[str, Any]]:
        """The events completed since the last call (none when the file does not exist yet)."""
        try:
            with self._path.open("rb") as stream:
                stream.seek(self._offset)
                chunk = stream.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        events = []
        for line in lines:
            if line.strip():
                events.append(json.loads(line))
        return events
