"""How an issuance ends, read from its CertificateRequest as cert-manager's issuing controller
reads it (``pkg/controller/certificates/issuing/issuing_controller.go``, ``ProcessItem``).

In upstream's order:

1. ``Denied=True`` (an approver refused it): fail with the Denied condition's reason and
   message;
2. ``InvalidRequest=True`` (the issuer refused its inputs): fail with that condition's;
3. no ``Ready`` condition: wait;
4. ``Ready`` reason ``Failed``: fail with ``Failed`` and Ready's message;
5. ``Ready`` reason ``Issued``: fail with ``InvalidCertificate`` when ``status.certificate``
   does not decode, its public key is not the CSR's, or it has already expired; else issued;
6. anything else (``Pending``): wait.

A failure (``failIssueCertificate``) sets the Certificate's ``Issuing=False`` with that reason
and :func:`issuing_message` of that message, ``lastFailureTime``, ``failedIssuanceAttempts``
and a Warning event of that reason. CertificateRequest Ready reasons:
``pkg/apis/certmanager/v1/types.go`` (Pending, Failed, Issued, Denied).
"""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from meshproof.lab.certmanager.conditions import condition
from meshproof.lab.certmanager.durations import format_time

__all__ = ["INVALID_CERTIFICATE", "Outcome", "issuing_message", "outcome"]

Obj = dict[str, Any]
INVALID_CERTIFICATE = "InvalidCertificate"
_RETRIED = "The certificate request has failed to complete and will be retried: "


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the issuing controller does with a CertificateRequest."""

    state: Literal["issued", "failed", "waiting"]
    reason: str = ""
    """The Certificate's Issuing=False reason (``failed`` only)."""
    message: str = ""
    """The CertificateRequest condition's message (``failed`` only)."""


def issuing_message(message: str) -> str:
    """The Certificate's Issuing=False message for a request condition's ``message``."""
    return _RETRIED + message


def _failed(cond: Obj) -> Outcome:
    return Outcome("failed", str(cond.get("reason") or ""), str(cond.get("message") or ""))


def _public_key(key: Any) -> bytes:
    return bytes(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def _check_certificate(request: Obj, now: datetime.datetime) -> Outcome:
    status = request.get("status") or {}
    try:
        pem = base64.b64decode(str(status.get("certificate") or ""), validate=True)
        cert = x509.load_pem_x509_certificate(pem)
    except (binascii.Error, ValueError) as exc:
        return Outcome("failed", INVALID_CERTIFICATE,
                       f"Issuer returned an invalid certificate: failed to decode: {exc}")
    try:
        csr = x509.load_pem_x509_csr(base64.b64decode(str(
            (request.get("spec") or {}).get("request") or "")))
        matches = _public_key(cert.public_key()) == _public_key(csr.public_key())
    except (binascii.Error, ValueError) as exc:
        return Outcome("failed", INVALID_CERTIFICATE,
                       f"Failed to compare certificate and CSR public keys: {exc}")
    if not matches:
        return Outcome("failed", INVALID_CERTIFICATE,
                       "Issuer returned a certificate with a public key that does not match "
                       "the CSR. This usually indicates a misconfigured issuer.")
    not_after = cert.not_valid_after_utc
    if now > not_after:
        return Outcome("failed", INVALID_CERTIFICATE,
                       f"Issuer returned an already expired certificate (notAfter: "
                       f"{format_time(not_after)}). This usually indicates an expired CA "
                       "certificate in the issuer.")
    return Outcome("issued")


def outcome(request: Obj, now: datetime.datetime) -> Outcome:
    """The issuing controller's decision on ``request`` (a CertificateRequest) at ``now``."""
    status = request.get("status") or {}
    for kind in ("Denied", "InvalidRequest"):
        cond = condition(status, kind)
        if cond is not None and cond.get("status") == "True":
            return _failed(cond)
    ready = condition(status, "Ready")
    if ready is None:
        return Outcome("waiting")
    if ready.get("reason") == "Failed":
        return _failed(ready)
    if ready.get("reason") == "Issued":
        return _check_certificate(request, now)
    return Outcome("waiting")
