"""Reports of a run, all rendered from one ``report.model.Report``.

``write_reports`` writes into the report directory:

=================  ==========================================================
``index.html``     the page a person reads first (``report.html``)
``report.json``    the report model, schema ``meshproof.report/v1``
``junit.xml``      one testcase per guarantee per cluster (``report.junit``)
``cucumber.json``  pytest-bdd's Cucumber JSON, normalized (``report.cucumber``)
``certificate.json`` pass / partial / fail, core and extended, evidence digest
``run.log``        pytest's own output, for when a check could not run
=================  ==========================================================

Every file passes through a ``Redactor`` first: no credential of the target is
ever written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshproof.report.certificate import render_certificate
from meshproof.report.cucumber import normalize_cucumber
from meshproof.report.html import render_html
from meshproof.report.junit import render_junit
from meshproof.report.model import Report
from meshproof.report.redact import Redactor
from meshproof.run.results import ScenarioResult

__all__ = ["REPORT_FILES", "write_reports"]

REPORT_FILES = (
    "index.html",
    "report.json",
    "junit.xml",
    "cucumber.json",
    "certificate.json",
    "run.log",
)
_EVIDENCE_BUNDLE = ("report.json", "junit.xml", "cucumber.json")


def _json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_reports(
    report: Report,
    report_dir: Path,
    *,
    cucumber: Sequence[dict[str, Any]],
    scenarios: Sequence[ScenarioResult],
    log: str,
    redactor: Redactor,
) -> dict[str, Path]:
    """Write every report file (redacted) and return their paths by name."""
    report_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "report.json": _json(redactor.data(report.to_dict())),
        "junit.xml": redactor.text(render_junit(report).decode("utf-8")),
        "cucumber.json": _json(redactor.data(normalize_cucumber(cucumber, scenarios))),
        "index.html": redactor.text(render_html(report)),
        "run.log": redactor.text(log),
    }
    bundle = {name: texts[name].encode("utf-8") for name in _EVIDENCE_BUNDLE}
    texts["certificate.json"] = _json(redactor.data(render_certificate(report, bundle)))
    written = {}
    for name in REPORT_FILES:
        path = report_dir / name
        path.write_text(texts[name], encoding="utf-8")
        written[name] = path
    return written
