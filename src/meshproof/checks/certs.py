"""CERT-RENEW: cert-manager certificates are Ready, renewing, and far enough from expiry.

Read from the Certificate objects' status (notAfter, renewalTime, conditions),
as ``kubectl get certificates -o json`` shows them. A renewal that keeps
failing (``Issuing=False`` with reason ``Failed``) is a violation even while the
current certificate is still valid: that is how cert-manager reports it.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["judge_certificates"]

DAY = 86400.0


def _when(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _condition(cert: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (cert.get("status") or {}).get("conditions") or []
                 if c.get("type") == kind), {})


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
        ready, issuing = _condition(cert, "Ready"), _condition(cert, "Issuing")
        days_left = (not_after - now) / DAY if not_after else None
        rows[key] = {"days_left": round(days_left, 3) if days_left is not None else None,
                     "ready": ready.get("status"), "revision": status.get("revision"),
                     "renewal_time": status.get("renewalTime")}
        if days_left is None or ready.get("status") != "True":
            problems[key] = f"not Ready ({ready.get('reason', 'no status')})"
        elif days_left < min_days:
            problems[key] = f"expires in {days_left:.1f} days (< {min_days:g})"
        elif issuing.get("status") == "False" and issuing.get("reason") == "Failed":
            problems[key] = f"renewal failing: {issuing.get('message', '')[:160]}"
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
