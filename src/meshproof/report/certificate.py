"""The JSON certificate: pass / partial / fail per profile, core and extended apart.

Shaped after the Gateway API conformance report (kubernetes-sigs/gateway-api,
``conformance/apis/v1/conformancereport.go``, ``profilereport.go``): per profile
a result and, for the core and the extended guarantees separately, statistics
and the names of those that failed or were skipped. ``evidence`` holds a sha256 of each file of the
evidence bundle and one digest over all of them, so a certificate can be checked
against the reports it was issued from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from meshproof.report.model import GuaranteeResult, Report, overall_result
from meshproof.sli.verdict import Verdict

__all__ = ["CERTIFICATE_SCHEMA", "bundle_digest", "render_certificate"]

CERTIFICATE_SCHEMA = "meshproof.certificate/v1"


def bundle_digest(files: Mapping[str, bytes]) -> dict[str, Any]:
    """sha256 per file, and one over ``name NUL sha256 NL`` lines in name order."""
    per_file = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
    whole = hashlib.sha256(
        b"".join(f"{name}\0{digest}\n".encode() for name, digest in per_file.items())
    ).hexdigest()
    return {"algorithm": "sha256", "digest": whole, "files": per_file}


def _tier(guarantees: list[GuaranteeResult]) -> dict[str, Any]:
    verdicts = [g.verdict for g in guarantees]
    return {
        "result": overall_result(verdicts) if guarantees else "pass",
        "statistics": {
            "held": sum(v is Verdict.HELD for v in verdicts),
            "violated": sum(v is Verdict.VIOLATED for v in verdicts),
            "notMeasurable": sum(v is Verdict.NOT_MEASURABLE for v in verdicts),
        },
        "heldGuarantees": [g.id for g in guarantees if g.verdict is Verdict.HELD],
        "violatedGuarantees": [g.id for g in guarantees if g.verdict is Verdict.VIOLATED],
        "notMeasurableGuarantees": [
            {"id": g.id, "reason": g.reason}
            for g in guarantees
            if g.verdict is Verdict.NOT_MEASURABLE
        ],
    }


def render_certificate(report: Report, evidence: Mapping[str, bytes]) -> dict[str, Any]:
    """The certificate of a run, with the digest of its evidence bundle."""
    run = report.run
    core = [g for g in report.guarantees if g.tier == "core"]
    extended = [g for g in report.guarantees if g.tier == "extended"]
    loosened = [
        {
            "guarantee": g.id,
            "threshold": o.name,
            "catalog": o.catalog_value,
            "target": o.target_value,
            "reason": o.reason,
        }
        for g in report.guarantees
        for o in g.thresholds.overrides
        if o.loosened
    ]
    return {
        "schema": CERTIFICATE_SCHEMA,
        "kind": "MeshproofCertificate",
        "date": run.finished,
        "runId": run.run_id,
        "meshproofVersion": run.meshproof_version,
        "runbook": run.runbook,
        "target": {"name": run.target, "clusters": [c.name for c in run.clusters]},
        "profiles": [
            {
                "name": run.profile,
                "result": report.summary.result,
                "requireAll": run.require_all,
                "core": _tier(core),
                "extended": _tier(extended),
            }
        ],
        "loosenedThresholds": loosened,
        "runErrors": list(run.errors),
        "evidence": bundle_digest(evidence),
    }
