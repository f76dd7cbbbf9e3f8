"""Recorded runs for the report tests: real report documents, and a drill's results file.

- ``nightly-slow-wan/``: ``report.json`` and ``cucumber.json`` of a nightly run on the lab
  under the ``slow-wan`` switch (XC-LATENCY and ALERTS-QUIET violated, the rest held).
- ``drill-results.jsonl``: a hand-written results file (``meshproof.run.pytest_plugin``'s
  format) of a failover drill: EW-FAILOVER held in aws-eks and violated in gcp-gke, each with
  a fault timeline, latency and success-rate series and a load summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshproof.catalog import load_catalog
from meshproof.report.model import Report, RunFacts, build_report
from meshproof.run.results import ScenarioResult
from meshproof.target import load_target
from tests.support.runner import LAB_LIKE

__all__ = ["DATA", "drill_report", "recorded_cucumber", "recorded_report"]

DATA = Path(__file__).resolve().parents[1] / "data" / "report"


def recorded_report() -> Report:
    """The recorded nightly run's report."""
    data = json.loads((DATA / "nightly-slow-wan" / "report.json").read_text(encoding="utf-8"))
    return Report.from_dict(data)


def recorded_cucumber() -> list[dict[str, Any]]:
    """pytest-bdd's Cucumber JSON of the recorded nightly run (as the runner wrote it)."""
    data: list[dict[str, Any]] = json.loads(
        (DATA / "nightly-slow-wan" / "cucumber.json").read_text(encoding="utf-8")
    )
    return data


def drill_scenarios() -> list[ScenarioResult]:
    lines = (DATA / "drill-results.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    return [ScenarioResult.from_event(e) for e in events if e.get("event") == "scenario"]


def drill_report() -> Report:
    """The drill's report, built from its results file the way the runner builds it."""
    catalog = load_catalog()
    scenarios = drill_scenarios()
    facts = RunFacts(
        run_id="drill0001",
        profile="drill",
        started=min(s.started for s in scenarios),
        finished=max(s.finished for s in scenarios),
        features_dir="features",
        require_all=False,
    )
    return build_report(
        load_target(LAB_LIKE), catalog, catalog.for_profile("drill"), scenarios, facts
    )
