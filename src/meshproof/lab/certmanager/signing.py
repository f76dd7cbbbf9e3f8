"""Signing a Certificate's request with a SelfSigned or CA issuer, and the Secret it ends in.

X.509 work is :mod:`meshproof.pki`'s; this module picks its inputs the way
cert-manager does (cert-manager/cert-manager ``pkg/issuer/{selfsigned,ca}``,
``pkg/controller/certificates/issuing/internal/secret.go``):

- names: ``commonName`` first, then ``dnsNames``; a CA issuer caps notAfter at its
  own certificate's notAfter;
- the Secret is ``kubernetes.io/tls`` with ``tls.crt`` (certificate and
  intermediates), ``tls.key`` and ``ca.crt``, annotated with the certificate and
  issuer it came from and labelled ``controller.cert-manager.io/fao``.

Lab limits: every issuance makes a new ECDSA P-256 key (``rotationPolicy: Always``,
cert-manager's default since v1.18; ``Never`` is not honoured); a SelfSigned
certificate is always made a CA (``pki.make_root_ca``, RSA 2048), which is what the
mesh uses it for; a CA issuer signs only leaf (non-CA) certificates.
"""

from __future__ import annotations

import base64
import datetime
import functools
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from meshproof import pki
from meshproof.errors import ConfigError

__all__ = [
    "IssuerRef",
    "SigningError",
    "csr_pem",
    "issuer_type",
    "load_ca",
    "names_of",
    "read_secret_pair",
    "secret_body",
    "sign",
]

Obj = dict[str, Any]
GROUP = "cert-manager.io"


class SigningError(Exception):
    """The issuer could not sign (the CertificateRequest fails with this message)."""


@dataclass(frozen=True, slots=True)
class IssuerRef:
    """A Certificate's ``issuerRef`` with cert-manager's defaults filled in."""

    name: str
    kind: str
    group: str

    @classmethod
    def of(cls, cert: Obj) -> IssuerRef:
        ref = (cert.get("spec") or {}).get("issuerRef") or {}
        return cls(name=str(ref.get("name", "")), kind=str(ref.get("kind") or "Issuer"),
                   group=str(ref.get("group") or GROUP))


def issuer_type(issuer: Obj) -> str:
    """``selfSigned``, ``ca``, or the name of another issuer type (not emulated)."""
    spec = issuer.get("spec") or {}
    for key in ("selfSigned", "ca", "acme", "vault", "venafi"):
        if key in spec:
            return key
    return "unknown"


def names_of(cert: Obj) -> list[str]:
    """The DNS names a certificate is for: ``commonName`` first, then ``dnsNames``."""
    spec = cert.get("spec") or {}
    names = [spec.get("commonName") or "", *(spec.get("dnsNames") or [])]
    return list(dict.fromkeys(str(n) for n in names if n))


def _b64(data: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}


def read_secret_pair(secret: Obj, what: str) -> pki.CertKey:
    """The certificate and key in a ``kubernetes.io/tls`` Secret; ``ConfigError`` if unusable."""
    data = secret.get("data") or {}
    if not data.get("tls.crt") or not data.get("tls.key"):
        raise ConfigError(f"{what} has no tls.crt / tls.key")
    try:
        cert_pem, key_pem = base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"])
    except ValueError as exc:
        raise ConfigError(f"{what} is not valid base64: {exc}") from exc
    return _parsed_pair(cert_pem, key_pem, what)


@functools.lru_cache(maxsize=64)
def _parsed_pair(cert_pem: bytes, key_pem: bytes, what: str) -> pki.CertKey:
    """Parsing (and checking) a private key is the costliest part of a reconcile pass, and the
    controller passes over the same Secrets every second: parsed pairs are kept by content."""
    return pki.cert_key_from_pem(cert_pem, key_pem, what=what)


def load_ca(secret: Obj, what: str) -> pki.CertKey:
    """A CA issuer's signing pair; ``ConfigError`` if it is missing, unparsable or not a CA."""
    ca = read_secret_pair(secret, what)
    try:
        bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ConfigError(f"{what} does not hold a CA certificate")
    return ca


def sign(cert: Obj, issuer: Obj, *, ca: pki.CertKey | None, duration: datetime.timedelta,
         not_before: datetime.datetime) -> pki.CertKey:
    """Issue ``cert`` with ``issuer`` (its CA pair in ``ca`` for a CA issuer)."""
    spec = cert.get("spec") or {}
    names = names_of(cert)
    kind = issuer_type(issuer)
    what = f"Certificate {cert['metadata'].get('namespace')}/{cert['metadata']['name']}"
    try:
        if kind == "selfSigned":
            days = max(1, round(duration / datetime.timedelta(days=1)))
            return pki.make_root_ca(common_name=names[0] if names else cert["metadata"]["name"],
                                    valid_days=days)
        if kind == "ca":
            if ca is None:
                raise SigningError("no signing CA keypair")
            if spec.get("isCA"):
                raise SigningError(f"{what}: isCA certificates from a CA issuer are not "
                                   "emulated by the lab")
            if not names:
                raise SigningError(f"{what} has no commonName or dnsNames")
            not_after = min(not_before + duration, ca.cert.not_valid_after_utc)
            return pki.issue_server_cert(ca, names, ttl=not_after - not_before,
                                         not_before=not_before)
    except ConfigError as exc:
        raise SigningError(str(exc)) from exc
    raise SigningError(f"issuer type {kind!r} is not emulated by the lab")


def csr_pem(names: list[str], key: pki.PrivateKey | None = None) -> bytes:
    """A CSR for ``names`` (the CertificateRequest's ``spec.request``); a new key if none."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])] if names else []))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def secret_body(cert: Obj, ck: pki.CertKey, ref: IssuerRef, existing: Obj | None) -> Obj:
    """The Secret ``spec.secretName`` should hold after issuing ``ck``."""
    meta, spec = cert["metadata"], cert.get("spec") or {}
    template = spec.get("secretTemplate") or {}
    annotations = {
        **(template.get("annotations") or {}),
        "cert-manager.io/alt-names": ",".join(spec.get("dnsNames") or []),
        "cert-manager.io/certificate-name": meta["name"],
        "cert-manager.io/common-name": spec.get("commonName", ""),
        "cert-manager.io/ip-sans": ",".join(spec.get("ipAddresses") or []),
        "cert-manager.io/issuer-group": ref.group,
        "cert-manager.io/issuer-kind": ref.kind,
        "cert-manager.io/issuer-name": ref.name,
        "cert-manager.io/uri-sans": ",".join(spec.get("uris") or []),
    }
    labels = {**(template.get("labels") or {}), "controller.cert-manager.io/fao": "true"}
    old_meta = (existing or {}).get("metadata") or {}
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": spec["secretName"], "namespace": meta.get("namespace"),
                     "annotations": {**(old_meta.get("annotations") or {}), **annotations},
                     "labels": {**(old_meta.get("labels") or {}), **labels}},
        "data": _b64(pki.tls_secret_data(ck)),
    }
