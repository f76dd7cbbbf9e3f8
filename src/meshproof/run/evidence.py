"""What a scenario measured, kept for the report: the ``evidence`` fixture's recorder.

Steps call ``evidence.add(key, value, cluster=...)`` for the numbers, queries and
time ranges a verdict rests on, ``evidence.judgement(j, cluster=...)`` for each
SLI judgement they made, ``evidence.timeline(phase, text)`` for the moments of a
drill and ``evidence.load(...)`` for the load a measurement was made under. The
results plugin writes all of it into the results file; the report shows it under
the scenario's guarantee(s), per cluster. A recorded judgement that is not
"held" also decides the scenario's verdict, so a step that forgets to assert
cannot turn a violation into "held".
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from meshproof.run.verdicts import GuaranteeViolated, NotMeasurable
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["EVIDENCE_KEY", "Evidence", "EvidenceItem", "RecordedJudgement", "jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: enums by value, dates as ISO text, NaN/inf as text."""
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset) and not isinstance(value, bytes):
        return [jsonable(v) for v in value]
    return str(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """One recorded fact: a query, a number, a time range."""

    key: str
    value: Any
    cluster: str | None
    """The cluster it was measured in; None when it is about the whole mesh."""
    recorded_at: str


@dataclass(frozen=True, slots=True)
class RecordedJudgement:
    """An SLI judgement a step made, with the cluster it was about."""

    verdict: Verdict
    reason: str
    cluster: str | None
    evidence: dict[str, Any]


@dataclass(slots=True)
class Evidence:
    """The recorder behind the ``evidence`` fixture, scoped to one scenario."""

    guarantee_ids: tuple[str, ...]
    """The guarantees the scenario checks (its catalog-id tags)."""
    cluster: str | None = None
    """The scenario's cluster (an Outline's ``cluster`` column), used when a step names none."""
    items: list[EvidenceItem] = field(default_factory=list)
    judgements: list[RecordedJudgement] = field(default_factory=list)
    timeline_events: list[dict[str, Any]] = field(default_factory=list)
    load_summaries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, key: str, value: Any, *, cluster: str | None = None) -> None:
        """Record ``value`` (JSON-able) under ``key``, for ``cluster`` or the scenario's cluster."""
        if not key:
            raise ValueError("evidence key must not be empty")
        self.items.append(EvidenceItem(key, jsonable(value), cluster or self.cluster, _now()))

    def judgement(self, judgement: Judgement, *, cluster: str | None = None) -> Judgement:
        """Record an SLI judgement (its reason and numbers) without deciding the step yet."""
        where = cluster or self.cluster
        self.judgements.append(
            RecordedJudgement(
                judgement.verdict, judgement.reason, where, jsonable(judgement.evidence)
            )
        )
        for key, value in judgement.evidence.items():
            self.add(key, value, cluster=where)
        return judgement

    def timeline(
        self, phase: str, description: str, *, cluster: str | None = None, at: str | None = None
    ) -> None:
        """Record a moment of a drill (fault applied, SLI crossed, alert fired, rollback done)."""
        self.timeline_events.append(
            {
                "at": at or _now(),
                "phase": phase,
                "description": description,
                "cluster": cluster or self.cluster,
            }
        )

    def load(
        self,
        *,
        requests: int,
        failures: int,
        rps: float,
        percentiles_ms: Mapping[Any, float] | None = None,
        users: int | None = None,
        source: str = "locust",
        cluster: str | None = None,
    ) -> None:
        """Record the load the measurement was made under (e.g. a Locust summary's numbers)."""
        self.load_summaries.append(
            {
                "source": source,
                "cluster": cluster or self.cluster,
                "users": users,
                "requests": int(requests),
                "failures": int(failures),
                "rps": jsonable(float(rps)),
                "percentiles_ms": {
                    str(k): jsonable(float(v)) for k, v in (percentiles_ms or {}).items()
                },
            }
        )

    def conclude(self) -> None:
        """Raise for the worst recorded judgement: a violation first, then not measurable."""
        for recorded in self.judgements:
            if recorded.verdict is Verdict.VIOLATED:
                raise GuaranteeViolated(
                    Judgement(recorded.verdict, recorded.reason, recorded.evidence),
                    cluster=recorded.cluster,
                )
        for recorded in self.judgements:
            if recorded.verdict is not Verdict.HELD:
                raise NotMeasurable(recorded.reason, cluster=recorded.cluster)

    def to_json(self) -> dict[str, Any]:
        """The recorder's content as the results file stores it."""
        return {
            "items": [
                {"key": i.key, "value": i.value, "cluster": i.cluster, "recorded_at": i.recorded_at}
                for i in self.items
            ],
            "judgements": [
                {
                    "verdict": j.verdict.value,
                    "reason": j.reason,
                    "cluster": j.cluster,
                    "evidence": j.evidence,
                }
                for j in self.judgements
            ],
            "timeline": list(self.timeline_events),
            "load": list(self.load_summaries),
        }


EVIDENCE_KEY = pytest.StashKey[Evidence]()
"""Where the ``evidence`` fixture leaves its recorder on the test item, for the results plugin."""
