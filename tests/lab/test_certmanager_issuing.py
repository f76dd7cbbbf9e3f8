"""The lab cert-manager's issuing decision: how a CertificateRequest ends its issuance.

Every case is a branch of cert-manager's issuing controller
(``pkg/controller/certificates/issuing/issuing_controller.go``, ``ProcessItem`` and
``failIssueCertificate``): the Certificate's Issuing=False reason is the request
condition's reason, whatever it is.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

import pytest

from meshproof import pki
from meshproof.lab.certmanager import signing
from meshproof.lab.certmanager.issuing import INVALID_CERTIFICATE, issuing_message, outcome

NOW = datetime.datetime.now(datetime.UTC)
HOUR = datetime.timedelta(hours=1)
SECOND = datetime.timedelta(seconds=1)
APPROVED = {"type": "Approved", "status": "True", "reason": "cert-manager.io"}


def _request(conditions: list[dict[str, Any]], leaf: pki.CertKey | None = None,
             csr_key: Any = None, certificate: str | None = None) -> dict[str, Any]:
    ca = pki.make_root_ca(common_name="issuing test CA", valid_days=1)
    leaf = leaf or pki.issue_server_cert(ca, ["a.example.com"], ttl=HOUR)
    status: dict[str, Any] = {"conditions": conditions}
    if certificate is not None:
        status["certificate"] = certificate
    elif any(c.get("reason") == "Issued" for c in conditions):
        status["certificate"] = base64.b64encode(pki.tls_secret_data(leaf)["tls.crt"].encode()
                                                 ).decode()
    csr = signing.csr_pem(["a.example.com"], csr_key if csr_key is not None else leaf.key)
    return {"spec": {"request": base64.b64encode(csr).decode()}, "status": status}


def _issued() -> dict[str, Any]:
    return {"type": "Ready", "status": "True", "reason": "Issued",
            "message": "Certificate fetched from issuer successfully"}


def test_a_failed_request_fails_issuance_with_reason_failed_and_its_message() -> None:
    """``crReadyCond.Reason == CertificateRequestReasonFailed`` → failIssueCertificate with the
    Ready condition; the message is prefixed as ``failIssueCertificate`` does."""
    result = outcome(_request([APPROVED, {"type": "Ready", "status": "False", "reason": "Failed",
                                          "message": "Error signing certificate: boom"}]), NOW)
    assert (result.state, result.reason) == ("failed", "Failed")
    assert issuing_message(result.message) == ("The certificate request has failed to complete "
                                               "and will be retried: Error signing certificate: "
                                               "boom")


def test_a_denied_request_fails_with_the_approvers_reason() -> None:
    """``CertificateRequestIsDenied`` comes first, and the Denied condition's own reason is
    copied (an approver such as approver-policy names itself there), even if an issuer also
    marked it Issued."""
    denied = {"type": "Denied", "status": "True", "reason": "policy.cert-manager.io",
              "message": "No policy approved this request"}
    result = outcome(_request([denied, _issued()]), NOW)
    assert (result.state, result.reason, result.message) == (
        "failed", "policy.cert-manager.io", "No policy approved this request")


def test_an_invalid_request_fails_with_the_issuers_reason() -> None:
    """``CertificateRequestHasInvalidRequest``: the issuer's InvalidRequest condition decides."""
    invalid = {"type": "InvalidRequest", "status": "True", "reason": "UnsupportedKeyType",
               "message": "Ed25519 keys are not supported"}
    result = outcome(_request([APPROVED, invalid]), NOW)
    assert (result.state, result.reason) == ("failed", "UnsupportedKeyType")


@pytest.mark.parametrize("conditions", [[APPROVED], [APPROVED, {
    "type": "Ready", "status": "False", "reason": "Pending", "message": "Waiting on approval"}]])
def test_a_request_without_a_final_state_is_waited_for(conditions: list[dict[str, Any]]) -> None:
    """No Ready condition, or Ready reason Pending: "CertificateRequest not in final state"."""
    assert outcome(_request(conditions), NOW).state == "waiting"


def test_an_issued_request_whose_key_matches_is_issued() -> None:
    assert outcome(_request([APPROVED, _issued()]), NOW).state == "issued"


def test_a_certificate_for_another_key_is_an_invalid_certificate() -> None:
    """``PublicKeysEqual`` false → InvalidCertificate "...does not match the CSR..."."""
    other = pki.make_root_ca(common_name="other key", valid_days=1).key
    result = outcome(_request([APPROVED, _issued()], csr_key=other), NOW)
    assert (result.state, result.reason) == ("failed", INVALID_CERTIFICATE)
    assert "does not match the CSR" in result.message


def test_an_already_expired_certificate_is_an_invalid_certificate() -> None:
    """``c.clock.Now().After(x509Cert.NotAfter)`` → InvalidCertificate (cert-manager ≥ 1.20)."""
    ca = pki.make_root_ca(common_name="issuing test CA", valid_days=1)
    leaf = pki.issue_server_cert(ca, ["a.example.com"], ttl=HOUR, not_before=NOW - 2 * HOUR)
    result = outcome(_request([APPROVED, _issued()], leaf=leaf), NOW)
    assert (result.state, result.reason) == ("failed", INVALID_CERTIFICATE)
    assert result.message.startswith("Issuer returned an already expired certificate (notAfter: ")
    assert outcome(_request([APPROVED, _issued()], leaf=leaf), NOW - 90 * 60 * SECOND
                   ).state == "issued"


def test_an_undecodable_certificate_is_an_invalid_certificate() -> None:
    result = outcome(_request([APPROVED, _issued()],
                              certificate=base64.b64encode(b"not a PEM").decode()), NOW)
    assert (result.state, result.reason) == ("failed", INVALID_CERTIFICATE)
    assert result.message.startswith("Issuer returned an invalid certificate: failed to decode")
