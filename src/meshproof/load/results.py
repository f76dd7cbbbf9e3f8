"""The typed outcome of a load run, and the parsers that build it from Locust's files."""

from __future__ import annotations

import csv
import json
import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from meshproof.load.recording import RequestRecord

__all__ = [
    "REPORTED_QUANTILES",
    "LoadResult",
    "LocustFailure",
    "LocustSummary",
    "RecordSummary",
    "exact_percentile",
    "locust_percentile",
    "parse_locust_failures",
    "parse_locust_json",
    "parse_locust_stats",
    "summarise_records",
]

REPORTED_QUANTILES: tuple[float, ...] = (
    0.5,
    0.66,
    0.75,
    0.8,
    0.9,
    0.95,
    0.98,
    0.99,
    0.999,
    0.9999,
    1.0,
)
"""The quantiles Locust reports in its CSV; exact ones are computed for the same."""


def exact_percentile(sorted_ms: Sequence[float], quantile: float) -> float:
    """Nearest-rank percentile: the smallest latency with ``quantile`` of requests at or under it.

    Locust's own rule (:func:`locust_percentile`) differs only at exact rank
    boundaries; the large difference between the two is Locust's rounding.
    ``nan`` when there are no samples.
    """
    if not sorted_ms:
        return math.nan
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    rank = max(1, math.ceil(quantile * len(sorted_ms) - 1e-9))
    return sorted_ms[rank - 1]


@dataclass(frozen=True, slots=True)
class LocustFailure:
    """One row of Locust's ``_failures.csv``."""

    method: str
    name: str
    error: str
    occurrences: int


@dataclass(frozen=True, slots=True)
class LocustSummary:
    """Locust's own totals over all request names, with its rounded percentiles."""

    requests: int
    failures: int
    rps: float
    average_ms: float
    percentiles_ms: Mapping[float, float]
    """Locust's rounded percentiles keyed by quantile (0.5, 0.95, ...)."""


def _quantile_of(column: str) -> float | None:
    if not column.endswith("%"):
        return None
    try:
        return round(float(column[:-1]) / 100.0, 6)
    except ValueError:
        return None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def parse_locust_stats(path: Path) -> LocustSummary | None:
    """The ``Aggregated`` row of ``<prefix>_stats.csv``; ``None`` if there is none.

    Locust rewrites this file every second while it runs and not again at the
    end, so the last second may be missing: prefer :func:`parse_locust_json`.
    """
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") != "Aggregated":
                continue
            percentiles = {
                q: _number(value)
                for column, value in row.items()
                if column is not None and (q := _quantile_of(column)) is not None
            }
            return LocustSummary(
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                rps=_number(row["Requests/s"]),
                average_ms=_number(row["Average Response Time"]),
                percentiles_ms=percentiles,
            )
    return None


def locust_percentile(histogram: Mapping[int, int], quantile: float) -> float:
    """Locust's percentile of its rounded histogram ``{rounded ms: count}``.

    Locust counts down from the slowest bucket until no more than
    ``int(n * quantile)`` requests remain below it (locust/stats.py,
    ``calculate_response_time_percentile``); ``nan`` when empty.
    """
    total = sum(histogram.values())
    if total == 0:
        return math.nan
    allowed_below = int(total * quantile)
    seen = 0
    for rounded in sorted(histogram, reverse=True):
        seen += histogram[rounded]
        if total - seen <= allowed_below:
            return float(rounded)
    return 0.0


def _json_array(text: str) -> list[dict[str, Any]] | None:
    """The stats array in Locust's ``--json`` stdout, even if a locustfile printed before it."""
    decoder = json.JSONDecoder()
    starts = [0] if text.startswith("[") else []
    starts += [i + 1 for i in range(len(text)) if text.startswith("\n[", i)]
    for start in reversed(starts):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, list):
            return [entry for entry in value if isinstance(entry, dict)]
    return None


def parse_locust_json(path: Path) -> LocustSummary | None:
    """Locust's totals from its ``--json`` output, written once at shutdown (so complete).

    Entries are merged into one histogram, as Locust's Aggregated row does.
    ``None`` if there is no such output (Locust never got to shut down cleanly).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    entries = _json_array(text)
    if entries is None:
        return None
    histogram: Counter[int] = Counter()
    requests = failures = 0
    total_ms = 0.0
    first: float | None = None
    last: float | None = None
    for entry in entries:
        requests += int(entry.get("num_requests", 0))
        failures += int(entry.get("num_failures", 0))
        total_ms += float(entry.get("total_response_time", 0.0))
        for rounded, count in (entry.get("response_times") or {}).items():
            histogram[int(float(rounded))] += int(count)
        if entry.get("start_time") is not None:
            first = min(first, entry["start_time"]) if first is not None else entry["start_time"]
        if entry.get("last_request_timestamp") is not None:
            stamp = entry["last_request_timestamp"]
            last = max(last, stamp) if last is not None else stamp
    span = (last - first) if first is not None and last is not None else 0.0
    return LocustSummary(
        requests=requests,
        failures=failures,
        rps=requests / span if span > 0 else 0.0,
        average_ms=total_ms / requests if requests else math.nan,
        percentiles_ms={q: locust_percentile(histogram, q) for q in REPORTED_QUANTILES},
    )


def parse_locust_failures(path: Path) -> tuple[LocustFailure, ...]:
    """Rows of ``<prefix>_failures.csv`` (empty when the file is missing).

    Written every second like the stats CSV, so counts may miss the last second;
    the error texts are what matters here.
    """
    if not path.is_file():
        return ()
    with open(path, newline="", encoding="utf-8") as handle:
        return tuple(
            LocustFailure(
                method=row["Method"],
                name=row["Name"],
                error=row["Error"],
                occurrences=int(row["Occurrences"]),
            )
            for row in csv.DictReader(handle)
        )


@dataclass(frozen=True, slots=True)
class RecordSummary:
    """What the exact records say, aggregated."""

    requests: int
    failures: int
    failures_by_kind: Mapping[str, int]
    status_counts: Mapping[int, int]
    versions: Mapping[str, int]
    instances: Mapping[str, int]
    latencies_ms: tuple[float, ...]
    """Every request's exact latency, sorted (failures included, as in Locust's stats)."""
    first_start: float | None
    last_end: float | None
    ok_latencies_ms: tuple[float, ...] = ()
    """The exact latencies of the requests that succeeded, sorted."""


def summarise_records(records: Iterable[RequestRecord]) -> RecordSummary:
    """Aggregate exact records into counts and sorted latencies."""
    kinds: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    instances: Counter[str] = Counter()
    latencies: list[float] = []
    ok_latencies: list[float] = []
    first: float | None = None
    last: float | None = None
    for record in records:
        latencies.append(record.latency_ms)
        statuses[record.status] += 1
        if record.failed:
            kinds[record.outcome] += 1
        else:
            ok_latencies.append(record.latency_ms)
        if record.version:
            versions[record.version] += 1
        if record.instance:
            instances[record.instance] += 1
        end = record.start + record.latency_ms / 1000.0
        first = record.start if first is None else min(first, record.start)
        last = end if last is None else max(last, end)
    latencies.sort()
    ok_latencies.sort()
    return RecordSummary(
        requests=len(latencies),
        failures=sum(kinds.values()),
        failures_by_kind=dict(kinds),
        status_counts=dict(statuses),
        versions=dict(versions),
        instances=dict(instances),
        latencies_ms=tuple(latencies),
        first_start=first,
        last_end=last,
        ok_latencies_ms=tuple(ok_latencies),
    )


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Everything a finished load run measured."""

    locustfile: str
    command: tuple[str, ...]
    """The (first) Locust command line, credentials removed."""
    started_at: datetime
    ended_at: datetime
    run_time_s: float
    """The planned run time."""
    requests: int
    """Requests recorded exactly (the number the suite trusts)."""
    failures: int
    failures_by_kind: Mapping[str, int]
    """e.g. ``{"http-503": 12, "connection-refused": 3}``."""
    status_counts: Mapping[int, int]
    """Responses by status; 0 counts requests that got no response."""
    versions: Mapping[str, int]
    """helloworld replies by version, e.g. ``{"v1": 90, "v2": 10}``."""
    instances: Mapping[str, int]
    rps: float
    """Requests per second over the span the records cover."""
    exact_percentiles_ms: Mapping[float, float]
    """Exact nearest-rank percentiles for :data:`REPORTED_QUANTILES`."""
    latencies_ms: tuple[float, ...] = field(repr=False)
    """Every exact latency, sorted."""
    locust: LocustSummary | None
    """Locust's own totals and rounded percentiles, for cross-checking."""
    locust_failures: tuple[LocustFailure, ...]
    """Locust's failure messages, counted as of its last CSV write."""
    exit_code: int
    """Locust's (the master's) exit code."""
    workers: int
    overran: bool
    """True when Locust did not stop by itself within its bound and was killed."""
    output_dir: Path
    stopped_early: bool = False
    """True when the plan's ``stop_when`` ended the load before its run time."""
    ok_latencies_ms: tuple[float, ...] = field(default=(), repr=False)
    """The exact latencies of the requests that succeeded, sorted."""

    @property
    def refused(self) -> int:
        """Requests whose connection the target refused."""
        return self.failures_by_kind.get("connection-refused", 0)

    @property
    def failure_ratio(self) -> float:
        """Failed share of all requests (0 when none were made)."""
        return self.failures / self.requests if self.requests else 0.0

    def exact_percentile(self, quantile: float) -> float:
        """Any exact percentile, e.g. ``0.95``."""
        return exact_percentile(self.latencies_ms, quantile)

    def share_at_or_under(self, threshold_ms: float) -> float:
        """The exact share of requests that took ``threshold_ms`` or less (0 when none)."""
        if not self.latencies_ms:
            return 0.0
        return bisect_right(self.latencies_ms, threshold_ms) / len(self.latencies_ms)

    def summary_line(self) -> str:
        """One line for a person, with a stable prefix."""
        p50 = self.exact_percentiles_ms.get(0.5, math.nan)
        p95 = self.exact_percentiles_ms.get(0.95, math.nan)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.failures_by_kind.items())) or "none"
        return (
            f"load: {self.requests} requests, {self.failures} failed ({kinds}), "
            f"{self.rps:.1f} rps, exact p50 {p50:.1f} ms, p95 {p95:.1f} ms"
        )
