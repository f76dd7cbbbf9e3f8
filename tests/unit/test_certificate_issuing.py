"""CERT-RENEW reads a failing issuance whatever reason cert-manager gives it.

cert-manager's issuing controller (``pkg/controller/certificates/issuing/issuing_controller.go``,
``failIssueCertificate``) copies the CertificateRequest's condition into the Certificate's
Issuing=False: ``Failed``, ``InvalidCertificate`` (cert-manager ≥ 1.20), a Denied or
InvalidRequest condition's own reason. Only ``Issued`` (its ServerSideApply success) is not a
failure.
"""

from __future__ import annotations

import datetime
from typing import Any, cast

import pytest

from meshproof.checks.certs import issuance_failure, judge_certificates
from meshproof.clients.kube import ClusterApi
from meshproof.sli.verdict import Verdict

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
PREFIX = "The certificate request has failed to complete and will be retried: "


def _stamp(days: float) -> str:
    return (NOW + datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cert(issuing: dict[str, Any] | None) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [{"type": "Ready", "status": "True", "reason": "Ready"}]
    if issuing is not None:
        conditions.append({"type": "Issuing", **issuing})
    return {"metadata": {"namespace": "istio-system", "name": "tls-cert"},
            "status": {"notBefore": _stamp(-60), "notAfter": _stamp(30),
                       "renewalTime": _stamp(-1), "revision": 3, "conditions": conditions}}


class _Api:
    cluster = "aws-eks"

    def __init__(self, certs: list[dict[str, Any]]) -> None:
        self.certs = certs

    def get(self, path: str, **query: str) -> dict[str, Any]:
        assert path == "/apis/cert-manager.io/v1/certificates"
        return {"items": self.certs}


def _judge(cert: dict[str, Any]) -> Any:
    return judge_certificates(cast(ClusterApi, _Api([cert])), min_days=7,
                              min_renewed_ratio=1.0, now=NOW.timestamp())


@pytest.mark.parametrize("reason,message", [
    ("Failed", "Error signing certificate: signing CA key is unusable"),
    ("InvalidCertificate", "Issuer returned an already expired certificate (notAfter: "
                           "2026-11-30T00:00:00Z). This usually indicates an expired CA "
                           "certificate in the issuer."),
    ("InvalidCertificate", "Issuer returned a certificate with a public key that does not "
                           "match the CSR. This usually indicates a misconfigured issuer."),
    ("policy.cert-manager.io", "No policy approved this request"),
    ("UnsupportedKeyType", "Ed25519 keys are not supported"),
])
def test_every_failure_reason_is_a_failing_renewal(reason: str, message: str) -> None:
    cert = _cert({"status": "False", "reason": reason, "message": PREFIX + message})
    assert issuance_failure(cert) == (reason, PREFIX + message)
    judgement = _judge(cert)
    assert judgement.verdict is Verdict.VIOLATED
    problem = judgement.evidence["problems"]["istio-system/tls-cert"]
    assert problem.startswith(f"renewal failing ({reason}): The certificate request")
    assert reason in judgement.reason


@pytest.mark.parametrize("issuing", [
    None,
    {"status": "True", "reason": "Renewing", "message": "Renewing certificate"},
    {"status": "False", "reason": "Issued",
     "message": "The certificate has been successfully issued"},
])
def test_no_failure_when_not_issuing_issuing_or_issued(issuing: dict[str, Any] | None) -> None:
    cert = _cert(issuing)
    cert["status"]["renewalTime"] = _stamp(10)
    assert issuance_failure(cert) is None
    assert _judge(cert).verdict is Verdict.HELD
