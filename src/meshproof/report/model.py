"""The report model: one typed, versioned document every report format is rendered from.

``build_report`` turns a run (its plan and the scenarios that ran) into a
``Report``; ``report.json`` is ``Report.to_dict()``. Verdicts add up as
``meshproof.run.verdicts.aggregate`` says: per cluster over its scenarios, per
guarantee over its clusters; a guarantee no scenario checked is not measurable
("no check ran on this target"), never held.

Schema ``meshproof.report/v1``; fields are only ever added within a version.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from meshproof import __version__
from meshproof.catalog import Catalog, Guarantee
from meshproof.errors import ConfigError
from meshproof.run.results import MESH, ScenarioResult
from meshproof.run.verdicts import Outcome, aggregate
from meshproof.sli.verdict import Verdict
from meshproof.target import Target

__all__ = [
    "NO_CHECK_RAN",
    "REPORT_SCHEMA",
    "ClusterInfo",
    "ClusterResult",
    "DrillTimeline",
    "EvidenceItem",
    "GuaranteeResult",
    "LoadSummary",
    "Report",
    "Result",
    "RunFacts",
    "RunInfo",
    "RunbookSource",
    "ScenarioRef",
    "Summary",
    "ThresholdOverride",
    "Thresholds",
    "TimelineEvent",
    "build_report",
    "overall_result",
]

REPORT_SCHEMA = "meshproof.report/v1"
NO_CHECK_RAN = "no check ran on this target"

Result = Literal["pass", "partial", "fail"]


@dataclass(frozen=True, slots=True)
class RunbookSource:
    """Where in the runbook the promise is made."""

    lines: tuple[int, int]
    section: str
    quote: str


@dataclass(frozen=True, slots=True)
class ThresholdOverride:
    """A threshold the target changed; a loosening always carries its reason."""

    name: str
    catalog_value: float
    target_value: float
    loosened: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The thresholds in force for this run (the catalog's, with the target's overrides)."""

    values: dict[str, float]
    window_s: int
    overrides: tuple[ThresholdOverride, ...] = ()


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    """One recorded fact (query, number, time range) a verdict rests on."""

    key: str
    value: Any
    cluster: str | None
    recorded_at: str
    scenario: str


@dataclass(frozen=True, slots=True)
class ScenarioRef:
    """A scenario that contributed to a cluster's verdict."""

    name: str
    nodeid: str
    feature: str
    outcome: str
    verdict: Verdict
    message: str
    fix: str
    duration_s: float
    started: str
    finished: str


@dataclass(frozen=True, slots=True)
class ClusterResult:
    """A guarantee's verdict in one cluster (or ``mesh`` for mesh-wide checks)."""

    cluster: str
    verdict: Verdict
    reason: str
    fix: str = ""
    could_not_run: bool = False
    """The check failed with an unexpected error: not measurable, and the run was faulty."""
    evidence: tuple[EvidenceItem, ...] = ()
    judgements: tuple[dict[str, Any], ...] = ()
    scenarios: tuple[ScenarioRef, ...] = ()


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One moment of a drill: fault applied, SLI crossed, alert fired, rollback done."""

    at: str
    phase: str
    description: str
    cluster: str | None = None


@dataclass(frozen=True, slots=True)
class DrillTimeline:
    """What happened, in time order, while a guarantee was checked under a fault."""

    events: tuple[TimelineEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """The load a guarantee was measured under (client side, e.g. Locust's numbers)."""

    scenario: str
    source: str
    cluster: str | None
    users: int | None
    requests: int
    failures: int
    rps: float
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    """Client-side latency percentiles by quantile (``"0.95"``), milliseconds."""


@dataclass(frozen=True, slots=True)
class GuaranteeResult:
    """One guarantee of the profile: the promise, how it was judged, and the evidence."""

    id: str
    statement: str
    area: str
    tier: Literal["core", "extended"]
    destructive: bool
    measure: str
    runbook: tuple[RunbookSource, ...]
    thresholds: Thresholds
    verdict: Verdict
    reason: str
    fix: str = ""
    clusters: tuple[ClusterResult, ...] = ()
    drill: DrillTimeline | None = None
    """Set when a scenario recorded timeline events (drills)."""
    load: tuple[LoadSummary, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """A cluster of the target, as the report names it (no credentials)."""

    name: str
    context: str
    network: str
    prometheus: str | None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Who ran what against which mesh, and when."""

    run_id: str
    target: str
    target_source: str
    clusters: tuple[ClusterInfo, ...]
    profile: str
    started: str
    finished: str
    meshproof_version: str
    features_dir: str
    require_all: bool
    runbook: dict[str, str]
    exit_code: int = 0
    errors: tuple[str, ...] = ()
    """Why the run itself was faulty (checks that crashed, pytest problems)."""


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts and names by verdict, and the overall result."""

    total: int
    held: tuple[str, ...]
    violated: tuple[str, ...]
    not_measurable: tuple[str, ...]
    result: Result


@dataclass(frozen=True, slots=True)
class Report:
    """The whole report document (``report.json``)."""

    run: RunInfo
    summary: Summary
    guarantees: tuple[GuaranteeResult, ...]
    scenarios_without_guarantee: tuple[str, ...] = ()
    """Scenarios that ran but carry no catalog id: they count for nothing (named so it shows)."""
    schema: str = REPORT_SCHEMA

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Read a ``report.json`` document back; another schema raises ``ConfigError``."""
        if data.get("schema") != REPORT_SCHEMA:
            raise ConfigError(
                f"report schema {data.get('schema')!r} is not {REPORT_SCHEMA!r}; "
                "read it with the meshproof version that wrote it"
            )
        report: Report = _typed(cls, data)
        return report

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, verdicts as their string values."""
        return _plain(dataclasses.asdict(self))

    def guarantee(self, guarantee_id: str) -> GuaranteeResult:
        for g in self.guarantees:
            if g.id == guarantee_id:
                return g
        raise KeyError(guarantee_id)

    @property
    def could_not_run(self) -> tuple[str, ...]:
        """Guarantee ids with a check that crashed."""
        return tuple(g.id for g in self.guarantees if any(c.could_not_run for c in g.clusters))


def _typed(kind: Any, value: Any) -> Any:
    """``value`` (plain JSON data) as ``kind``: dataclasses, tuples, optionals, verdicts."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if value is None:
        return None
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = typing.get_type_hints(kind)
        known = {f.name for f in dataclasses.fields(kind)}
        return kind(**{k: _typed(hints[k], v) for k, v in value.items() if k in known})
    if origin in (types.UnionType, typing.Union):
        return _typed(next(a for a in args if a is not type(None)), value)
    if origin is tuple:
        return tuple(_typed(args[0], v) for v in value)
    if kind is Verdict:
        return Verdict(value)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Verdict):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def overall_result(verdicts: Sequence[Verdict]) -> Result:
    """``fail`` if any violated, ``partial`` if any not measurable, else ``pass``."""
    if any(v is Verdict.VIOLATED for v in verdicts):
        return "fail"
    if any(v is not Verdict.HELD for v in verdicts) or not verdicts:
        return "partial"
    return "pass"


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _scenario_ref(s: ScenarioResult) -> ScenarioRef:
    return ScenarioRef(
        name=s.name,
        nodeid=s.nodeid,
        feature=s.feature,
        outcome=s.outcome.value,
        verdict=s.verdict,
        message=s.message,
        fix=s.fix,
        duration_s=s.duration_s,
        started=s.started,
        finished=s.finished,
    )


def _explain(s: ScenarioResult) -> str:
    if s.could_not_run:
        return f"the check could not run: {s.message}"
    return s.message or s.outcome.value


def _cluster_result(cluster: str, scenarios: list[ScenarioResult]) -> ClusterResult:
    verdict = aggregate(s.verdict for s in scenarios)
    deciding = [s for s in scenarios if s.verdict is verdict and verdict is not Verdict.HELD]
    if verdict is Verdict.HELD:
        reason = f"{len(scenarios)} scenario{'s' if len(scenarios) > 1 else ''} held"
    else:
        reason = "; ".join(dict.fromkeys(_explain(s) for s in deciding))
    evidence = tuple(
        EvidenceItem(
            str(i["key"]), i.get("value"), i.get("cluster"), str(i.get("recorded_at", "")), s.name
        )
        for s in scenarios
        for i in s.evidence.get("items", [])
    )
    judgements = tuple(j for s in scenarios for j in s.evidence.get("judgements", []))
    return ClusterResult(
        cluster=cluster,
        verdict=verdict,
        reason=reason,
        fix=next((s.fix for s in deciding if s.fix), ""),
        could_not_run=any(s.could_not_run for s in scenarios),
        evidence=evidence,
        judgements=judgements,
        scenarios=tuple(_scenario_ref(s) for s in scenarios),
    )


def _guarantee_result(
    g: Guarantee, target: Target, catalog: Catalog, scenarios: list[ScenarioResult]
) -> GuaranteeResult:
    effective = target.effective_thresholds(catalog, g.id)
    by_cluster: dict[str, list[ScenarioResult]] = {}
    for s in scenarios:
        by_cluster.setdefault(s.cluster_key, []).append(s)
    # Clusters in the target's order, the mesh-wide checks last.
    order = [*target.cluster_names, MESH]
    keys = sorted(by_cluster, key=lambda k: order.index(k) if k in order else len(order))
    clusters = tuple(_cluster_result(k, by_cluster[k]) for k in keys)
    verdict = aggregate(c.verdict for c in clusters)
    events = sorted(
        (
            TimelineEvent(
                str(e.get("at", "")),
                str(e.get("phase", "")),
                str(e.get("description", "")),
                e.get("cluster"),
            )
            for s in scenarios
            for e in s.evidence.get("timeline", [])
        ),
        key=lambda e: e.at,
    )
    load = tuple(
        LoadSummary(
            scenario=s.name,
            source=str(entry.get("source", "")),
            cluster=entry.get("cluster"),
            users=entry.get("users"),
            requests=int(entry.get("requests", 0)),
            failures=int(entry.get("failures", 0)),
            rps=float(entry.get("rps", 0.0)),
            percentiles_ms=dict(entry.get("percentiles_ms") or {}),
        )
        for s in scenarios
        for entry in s.evidence.get("load", [])
    )
    if not clusters:
        reason = NO_CHECK_RAN
        fix = f"add a scenario tagged @{g.id} to features/{g.feature_file}"
    elif verdict is Verdict.HELD:
        reason = f"held in {', '.join(c.cluster for c in clusters)}"
        fix = ""
    else:
        deciding = [c for c in clusters if c.verdict is verdict]
        reason = "; ".join(f"{c.cluster}: {c.reason}" for c in deciding)
        fix = next((c.fix for c in deciding if c.fix), "")
    return GuaranteeResult(
        id=g.id,
        statement=g.statement,
        area=g.area,
        tier=g.tier,
        destructive=g.destructive,
        measure=g.sli.measure,
        runbook=tuple(RunbookSource(r.lines, r.section, r.quote) for r in g.runbook),
        thresholds=Thresholds(
            values=dict(effective.values),
            window_s=effective.window_s,
            overrides=tuple(
                ThresholdOverride(c.name, c.catalog_value, c.target_value, c.loosened, c.reason)
                for c in effective.changes
            ),
        ),
        verdict=verdict,
        reason=reason,
        fix=fix,
        clusters=clusters,
        drill=DrillTimeline(tuple(events)) if events else None,
        load=load,
    )


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the runner knows about the run besides the scenarios."""

    run_id: str
    profile: str
    started: str
    finished: str
    features_dir: str
    require_all: bool
    errors: tuple[str, ...] = field(default_factory=tuple)


def build_report(
    target: Target,
    catalog: Catalog,
    guarantees: Sequence[Guarantee],
    scenarios: Sequence[ScenarioResult],
    facts: RunFacts,
) -> Report:
    """The report of a run: every guarantee of the profile gets a verdict."""
    results = tuple(
        _guarantee_result(g, target, catalog, [s for s in scenarios if g.id in s.ids])
        for g in guarantees
    )
    errors = list(facts.errors)
    for s in scenarios:
        if s.outcome is Outcome.ERROR or s.errors:
            for message in s.errors or (s.message,):
                errors.append(f"{', '.join(s.ids) or s.nodeid} [{s.cluster_key}]: {message}")
    run = RunInfo(
        run_id=facts.run_id,
        target=target.name,
        target_source=str(target.source or ""),
        clusters=tuple(
            ClusterInfo(
                c.name,
                c.context,
                c.network,
                _without_userinfo(c.prometheus.url) if c.prometheus else None,
            )
            for c in target.clusters
        ),
        profile=facts.profile,
        started=facts.started,
        finished=facts.finished,
        meshproof_version=__version__,
        features_dir=facts.features_dir,
        require_all=facts.require_all,
        runbook=dict(catalog.runbook),
        errors=tuple(dict.fromkeys(errors)),
    )
    summary = Summary(
        total=len(results),
        held=tuple(g.id for g in results if g.verdict is Verdict.HELD),
        violated=tuple(g.id for g in results if g.verdict is Verdict.VIOLATED),
        not_measurable=tuple(g.id for g in results if g.verdict is Verdict.NOT_MEASURABLE),
        result=overall_result([g.verdict for g in results]),
    )
    stray = tuple(s.nodeid for s in scenarios if not s.ids)
    return Report(run=run, summary=summary, guarantees=results, scenarios_without_guarantee=stray)
