"""The JSON certificate: pass / partial / fail per profile, core and extended apart.

Shaped after the Gateway API conformance report (kubernetes-sigs/gateway-api,
``conformance/apis/v1/conformancereport.go``, ``profilereport.go``): per profile
a result and, for the core and the extended guarantees separately, statistics
and the names of those that failed or were skipped, and a one-line summary.
``evidence`` holds a sha256 of each file of the evidence bundle and one digest
over all of them; ``check_certificate`` checks a report directory against the
certificate in it, so a changed report does not pass as certified.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshproof.report.model import GuaranteeResult, Report, overall_result
from meshproof.sli.verdict import Verdict

__all__ = ["CERTIFICATE_SCHEMA", "bundle_digest", "check_certificate", "render_certificate"]

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


def _summary(core: dict[str, Any], extended: dict[str, Any]) -> str:
    parts = []
    for name, tier in (("core", core), ("extended", extended)):
        counts = tier["statistics"]
        total = counts["held"] + counts["violated"] + counts["notMeasurable"]
        if total:
            parts.append(
                f"{name} {tier['result']}: {counts['held']}/{total} held, "
                f"{counts['violated']} violated, {counts['notMeasurable']} not measurable"
            )
    return "; ".join(parts) or "no guarantees"


def check_certificate(directory: Path) -> list[str]:
    """What in ``directory`` does not match its ``certificate.json``; empty when all does."""
    try:
        certificate = json.loads((directory / "certificate.json").read_text(encoding="utf-8"))
        recorded = certificate["evidence"]
        names = list(recorded["files"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{directory / 'certificate.json'}: not a readable certificate ({exc})"]
    problems = []
    files = {}
    for name in names:
        try:
            files[name] = (directory / name).read_bytes()
        except OSError as exc:
            problems.append(f"{name}: {exc.strerror or exc}")
    if problems:
        return problems
    actual = bundle_digest(files)
    problems = [
        f"{name}: sha256 {actual['files'][name]} is not the certified {digest}"
        for name, digest in recorded["files"].items()
        if actual["files"][name] != digest
    ]
    if actual["digest"] != recorded.get("digest"):
        problems.append(f"bundle digest {actual['digest']} is not the certified one")
    return problems


def render_certificate(report: Report, evidence: Mapping[str, bytes]) -> dict[str, Any]:
    """The certificate of a run, with the digest of its evidence bundle."""
    run = report.run
    core = [g for g in report.guarantees if g.tier == "core"]
    extended = [g for g in report.guarantees if g.tier == "extended"]
    core_tier, extended_tier = _tier(core), _tier(extended)
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
                "core": core_tier,
                "extended": extended_tier,
                "summary": _summary(core_tier, extended_tier),
            }
        ],
        "loosenedThresholds": loosened,
        "runErrors": list(run.errors),
        "evidence": bundle_digest(evidence),
    }
