"""JUnit XML: one testcase per guarantee per cluster, for CI systems.

Conventions (the schema Jenkins, GitLab and most CI parsers read): a
``<testsuites>`` root with totals, one ``<testsuite>`` for the profile with
``<properties>`` describing the run, ``<testcase classname name time>``; a
violated guarantee is a ``<failure>``, a not-measurable one ``<skipped>`` (its
message says why, and "could not run" when the check crashed). A guarantee that
no scenario checked is one skipped testcase named ``all clusters``. A mesh-wide
scenario's judgements give each cluster its testcase; what no cluster explains
is the testcase ``mesh`` (``meshproof.report.clusters``).
"""

from __future__ import annotations

import json
import platform
import xml.etree.ElementTree as ET

from meshproof.report.clusters import cluster_verdicts
from meshproof.report.model import Report
from meshproof.sli.verdict import Verdict

__all__ = ["render_junit"]

_NO_CLUSTER = "all clusters"


def _evidence_text(items: list[tuple[str, object]]) -> str:
    return "\n".join(f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in items)


def render_junit(report: Report) -> bytes:
    """The report as JUnit XML (UTF-8, with an XML declaration)."""
    run = report.run
    suite_name = f"meshproof.{run.profile}"
    # The JUnit schema's timestamp is an ISO 8601 date-time without a zone; ours are UTC.
    timestamp = run.started.split("+")[0].removesuffix("Z")
    suite = ET.Element("testsuite", name=suite_name, timestamp=timestamp, hostname=platform.node())
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("target", run.target),
        ("profile", run.profile),
        ("run_id", run.run_id),
        ("meshproof_version", run.meshproof_version),
        ("result", report.summary.result),
        *((f"context.{c.name}", c.context) for c in run.clusters),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    tests = failures = skipped = 0
    total_time = 0.0
    order = [c.name for c in run.clusters]
    for g in report.guarantees:
        cases = cluster_verdicts(g, order)
        if not cases:
            case = ET.SubElement(
                suite, "testcase", classname=f"{suite_name}.{g.id}", name=_NO_CLUSTER, time="0"
            )
            ET.SubElement(case, "skipped", message=f"not measurable: {g.reason}")
            tests += 1
            skipped += 1
            continue
        for c in cases:
            seconds = c.duration_s
            total_time += seconds
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{suite_name}.{g.id}",
                name=c.cluster,
                time=f"{seconds:.3f}",
            )
            tests += 1
            if c.verdict is Verdict.VIOLATED:
                failures += 1
                failure = ET.SubElement(case, "failure", message=c.reason, type="violated")
                failure.text = f"{g.statement}\n{c.reason}"
            elif c.verdict is not Verdict.HELD:
                skipped += 1
                why = c.reason + (f" (fix: {c.fix})" if c.fix else "")
                ET.SubElement(case, "skipped", message=f"not measurable: {why}")
            if c.evidence:
                out = ET.SubElement(case, "system-out")
                out.text = _evidence_text([(e.key, e.value) for e in c.evidence])
    counts = {
        "tests": str(tests),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": f"{total_time:.3f}",
    }
    suite.attrib.update(counts)
    root = ET.Element("testsuites", {"name": "meshproof", **counts})
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
