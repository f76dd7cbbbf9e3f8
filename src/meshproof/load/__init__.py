"""Load generation: Locust, run headless as a subprocess, parsed into typed results.

- ``plan``: ``LoadPlan`` (what to run, bounded) and ``LoadProgress`` reports.
- ``runner``: ``run_load(plan) -> LoadResult``; single process or master + local workers.
- ``background``: ``BackgroundLoad``, runs that go on while the suite does something else.
- ``results``: ``LoadResult``, exact percentiles, parsers of Locust's CSV output.
- ``recording``: the exact per-request records the locustfiles write (no Locust import).
- ``command``: Locust command lines and their redacted form.

Nothing in this package imports Locust; the locustfiles live in ``loadtests/``.
"""

from __future__ import annotations

from meshproof.load.background import BackgroundLoad
from meshproof.load.plan import LOADTESTS_DIR, LoadPlan, LoadProgress, Shape, bundled_locustfile
from meshproof.load.recording import RequestRecord, RequestRecorder, failure_kind, hello_version
from meshproof.load.results import (
    REPORTED_QUANTILES,
    LoadResult,
    LocustFailure,
    LocustSummary,
    exact_percentile,
)
from meshproof.load.runner import ensure_locust, run_load

__all__ = [
    "LOADTESTS_DIR",
    "REPORTED_QUANTILES",
    "BackgroundLoad",
    "LoadPlan",
    "LoadProgress",
    "LoadResult",
    "LocustFailure",
    "LocustSummary",
    "RequestRecord",
    "RequestRecorder",
    "Shape",
    "bundled_locustfile",
    "ensure_locust",
    "exact_percentile",
    "failure_kind",
    "hello_version",
    "run_load",
]
