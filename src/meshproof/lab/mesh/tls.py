"""TLS for the proxy: mutual-TLS contexts from pushed PEM, peer identity, and SNI peeking.

Mesh traffic is mutual TLS with the workload certificate (SPIFFE URI SAN) and
the trust bundle; the peer's identity is read from its verified certificate.
The east-west gateway routes on the SNI of a ClientHello it never terminates,
so ``client_hello_sni`` parses that from raw bytes (RFC 8446 §4.1.2, RFC 6066 §3).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
import tempfile
from dataclasses import dataclass

from meshproof.errors import LabError
from meshproof.lab.mesh.config import Certificate

__all__ = [
    "PeerIdentity",
    "cert_not_after",
    "classify_handshake_error",
    "client_hello_complete",
    "client_hello_sni",
    "client_mtls_context",
    "peer_identity",
    "server_mtls_context",
    "simple_server_context",
]


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """What a verified peer certificate says."""

    spiffe: str
    """The first ``spiffe://`` URI SAN, or ``""``."""
    cert_sha256: str
    """SHA-256 of the certificate's DER, hex (XFCC's ``Hash``)."""


def _load_chain(ctx: ssl.SSLContext, chain_pem: str, key_pem: str, what: str) -> None:
    # ssl can only load a key pair from files; they live for the duration of the call.
    fd, path = tempfile.mkstemp(prefix="meshproof-proxy-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(chain_pem if chain_pem.endswith("\n") else chain_pem + "\n")
            fh.write(key_pem)
        ctx.load_cert_chain(path)
    except (ssl.SSLError, OSError) as exc:
        raise LabError(f"cannot load the {what} certificate and key: {exc}") from exc
    finally:
        os.unlink(path)


def _trust(ctx: ssl.SSLContext, roots_pem: str, what: str) -> None:
    try:
        ctx.load_verify_locations(cadata=roots_pem)
    except (ssl.SSLError, ValueError) as exc:
        raise LabError(f"cannot load the {what} trust bundle: {exc}") from exc


def server_mtls_context(cert: Certificate, *, what: str) -> ssl.SSLContext:
    """Inbound mTLS: present the workload certificate, require one from the client."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, cert.cert_chain_pem, cert.key_pem, what)
    _trust(ctx, cert.root_bundle_pem, what)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_mtls_context(cert: Certificate, *, what: str) -> ssl.SSLContext:
    """Outbound ISTIO_MUTUAL: verify the peer chain; its SAN is checked after the handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # The peer is named by its SPIFFE URI, not a DNS name; peer_identity checks it.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load_chain(ctx, cert.cert_chain_pem, cert.key_pem, what)
    _trust(ctx, cert.root_bundle_pem, what)
    return ctx


def simple_server_context(chain_pem: str, key_pem: str, *, what: str) -> ssl.SSLContext:
    """Gateway TLS SIMPLE: present a server certificate, ask nothing of the client."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(ctx, chain_pem, key_pem, what)
    return ctx


def peer_identity(sslobj: ssl.SSLObject | ssl.SSLSocket | None) -> PeerIdentity | None:
    """The verified peer's SPIFFE id and certificate hash, or None without a peer certificate."""
    if sslobj is None:
        return None
    der = sslobj.getpeercert(binary_form=True)
    if not der:
        return None
    info = sslobj.getpeercert() or {}
    spiffe = ""
    for entry in info.get("subjectAltName", ()):
        kind, value = entry[0], entry[1]
        if kind == "URI" and str(value).startswith("spiffe://"):
            spiffe = str(value)
            break
    return PeerIdentity(spiffe=spiffe, cert_sha256=hashlib.sha256(der).hexdigest())


def classify_handshake_error(exc: BaseException) -> list[str]:
    """Envoy ssl stat suffixes a failed handshake counts under (besides ``connection_error``)."""
    text = str(exc).upper()
    if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in text or "CERTIFICATE_REQUIRED" in text:
        return ["no_certificate", "fail_verify_no_cert"]
    if "CERTIFICATE_VERIFY_FAILED" in text or "UNKNOWN_CA" in text or "BAD_CERTIFICATE" in text:
        return ["fail_verify_error"]
    return []


def _handshake_bytes(data: bytes) -> bytes | None:
    """The concatenated handshake-record payloads at the start of ``data`` (None if not TLS)."""
    if not data:
        return b""
    if data[0] != 0x16:
        return None
    out = bytearray()
    pos = 0
    while pos + 5 <= len(data) and data[pos] == 0x16:
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        out += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(out) >= 4 and len(out) >= 4 + int.from_bytes(out[1:4], "big"):
            break
    return bytes(out)


def client_hello_complete(data: bytes) -> bool:
    """True once ``data`` holds a whole ClientHello (or is clearly not TLS)."""
    hs = _handshake_bytes(data)
    if hs is None:
        return True
    return len(hs) >= 4 and len(hs) >= 4 + int.from_bytes(hs[1:4], "big")


def client_hello_sni(data: bytes) -> str | None:
    """The server_name of the ClientHello at the start of ``data``; None if absent or not TLS."""
    hs = _handshake_bytes(data)
    if not hs or len(hs) < 4 or hs[0] != 0x01:
        return None
    body = hs[4 : 4 + int.from_bytes(hs[1:4], "big")]
    try:
        pos = 2 + 32  # legacy_version, random
        pos += 1 + body[pos]  # legacy_session_id
        pos += 2 + int.from_bytes(body[pos : pos + 2], "big")  # cipher_suites
        pos += 1 + body[pos]  # legacy_compression_methods
        end = pos + 2 + int.from_bytes(body[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= end:
            ext_type = int.from_bytes(body[pos : pos + 2], "big")
            ext_len = int.from_bytes(body[pos + 2 : pos + 4], "big")
            ext = body[pos + 4 : pos + 4 + ext_len]
            pos += 4 + ext_len
            if ext_type != 0:  # server_name
                continue
            p = 2  # ServerNameList length
            while p + 3 <= len(ext):
                name_type = ext[p]
                name_len = int.from_bytes(ext[p + 1 : p + 3], "big")
                if name_type == 0:
                    return ext[p + 3 : p + 3 + name_len].decode("ascii")
                p += 3 + name_len
    except (IndexError, UnicodeDecodeError):
        return None
    return None


def cert_not_after(chain_pem: str) -> datetime.datetime:
    """Expiry of the first certificate of a PEM chain (UTC)."""
    from cryptography import x509  # only needed for readiness checks; keep start-up light

    try:
        cert = x509.load_pem_x509_certificate(chain_pem.encode())
    except ValueError as exc:
        raise LabError(f"cannot read the workload certificate: {exc}") from exc
    return cert.not_valid_after_utc
