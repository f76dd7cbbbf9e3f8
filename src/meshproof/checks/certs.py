"""CERT-RENEW: cert-manager certificates are Ready, renewing, and far enough from expiry.

Read from the Certificate objects' status (notAfter, renewalTime, conditions),
as ``kubectl get certificates -o json`` shows them. A renewal that keeps
failing is a violation even while the current certificate is still valid: that is
how cert-manager reports it. Its issuing controller
(``pkg/controller/certificates/issuing/issuing_controller.go``, ``failIssueCertificate``)
sets ``Issuing=False`` with the CertificateRequest's reason: ``Failed``,
``InvalidCertificate``, or the reason of a Denied or InvalidRequest condition (an
approver's or issuer's own word); so any Issuing=False reason but ``Issued`` (its
success, with the ServerSideApply feature) is a failure, reported with its message.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["ISSUED", "issuance_failure", "judge_certificates"]

DAY = 86400.0
ISSUED = "Issued"
"""The one Issuing=False reason that is not a failure (``updateOrApplyStatus``)."""


def _when(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _condition(cert: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (cert.get("status") or {}).get("conditions") or []
                 if c.get("type") == kind), {})


def issuance_failure(cert: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, message) of the Certificate's failed issuance, or None: not failing."""
    issuing = _condition(cert, "Issuing")
    if issuing.get("status") != "False" or issuing.get("reason") == ISSUED:
        return None
    return str(issuing.get("reason") or "no reason"), str(issuing.get("message") or "")


def judge_certificates(api: ClusterApi, *, min_days: float, min_renewed_ratio: float,
                       now: float | None = None) -> Judgement:
    now = now if now is not None else time.time()
    try:
        certs = api.get("/apis/cert-manager.io/v1/certificates").get("items") or []
    except NotFoundError:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{api.cluster}: cert-manager's Certificate API is not served "
                         "(install cert-manager)", {})
    rows: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    for cert in certs:
        key = f"{cert['metadata']['namespace']}/{cert['metadata']['name']}"
        status = cert.get("status") or {}
        not_after, renewal = _when(status.get("notAfter")), _when(status.get("renewalTime"))
        ready, failure = _condition(cert, "Ready"), issuance_failure(cert)
        days_left = (not_after - now) / DAY if not_after else None
        rows[key] = {"days_left": round(days_left, 3) if days_left is not None else None,
                     "ready": ready.get("status"), "revision": status.get("revision"),
                     "renewal_time": status.get("renewalTime")}
        if days_left is None or ready.get("status") != "True":
            problems[key] = f"not Ready ({ready.get('reason', 'no status')})"
        elif days_left < min_days:
            problems[key] = f"expires in {days_left:.1f} days (< {min_days:g})"
        elif failure is not None:
            problems[key] = f"renewal failing ({failure[0]}): {failure[1][:160]}"
        elif renewal is None or not_after is None or renewal >= not_after:
            problems[key] = "no renewal scheduled before expiry"
    evidence = {"certificates": rows, "problems": problems, "min_days": min_days}
    if not certs:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{api.cluster}: no cert-manager Certificate to check", evidence)
    healthy = len(certs) - len(problems)
    if healthy / len(certs) < min_renewed_ratio:
        worst = "; ".join(f"{k}: {v}" for k, v in sorted(problems.items())[:3])
        return Judgement(Verdict.VIOLATED, f"{api.cluster}: {len(problems)} of {len(certs)} "
                         f"certificates at risk — {worst}", evidence)
    return Judgement(Verdict.HELD, f"{api.cluster}: all {len(certs)} certificates Ready, "
                     f"renewing, and at least {min_days:g} days from expiry", evidence)
