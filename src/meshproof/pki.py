"""The mesh's PKI: a shared root CA, one intermediate per cluster, and leaf certificates.

This is Istio's "plug-in CA" layout (the ``cacerts`` secret in istio-system):
one root shared by every cluster, so workloads of both clusters trust each
other, and one intermediate per cluster that istiod signs workload
certificates with. The lab issues its certificates with these functions and
the kind bootstrap runs the CLI::

    python -m meshproof.pki --out DIR --clusters aws-eks,gcp-gke

which writes ``DIR/root-cert.pem``, ``DIR/root-key.pem`` and, per cluster,
``DIR/<cluster>/{ca-cert.pem,ca-key.pem,root-cert.pem,cert-chain.pem}``.
An existing root in ``DIR`` is reused, so the clusters keep one trust anchor
across re-runs.

CA keys are RSA 2048. Leaf keys are ECDSA P-256, because they are generated
per workload and rotated often; Istio's own sidecars default to RSA 2048 and
switch to ECDSA P-256 with ``ECC_SIGNATURE_ALGORITHM=ECDSA`` (istio/istio
``pilot/cmd/pilot-agent/options/options.go``), so both are shapes a real mesh
produces.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshproof.errors import ConfigError

__all__ = [
    "ISTIOD_DNS_NAME",
    "CertKey",
    "PrivateKey",
    "cacerts_secret_data",
    "cert_key_from_pem",
    "issue_server_cert",
    "issue_workload_cert",
    "load_cert_key",
    "main",
    "make_intermediate_ca",
    "make_root_ca",
    "spiffe_id",
    "tls_secret_data",
    "write_plugin_ca",
]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""A key this module makes: RSA for CAs, ECDSA P-256 for leaves."""

ISTIOD_DNS_NAME = "istiod.istio-system.svc"
"""The SAN Istio expects on a plug-in intermediate (FACTS.md "mTLS")."""

_CA_KEY_BITS = 2048
# CA certificates are backdated a little so that a node whose clock lags the
# machine that generated them still accepts them.
_CA_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class CertKey:
    """A certificate, its private key and its issuers (nearest first, root last)."""

    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    def cert_pem(self) -> bytes:
        """The certificate alone, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        """The private key, unencrypted PKCS#8 PEM (what istiod and Envoy read)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def chain_pem(self) -> bytes:
        """The certificate followed by its issuers, nearest first, PEM."""
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.cert, *self.chain)
        )

    @property
    def root(self) -> x509.Certificate:
        """The self-signed end of the chain (the certificate itself for a root)."""
        return self.chain[-1] if self.chain else self.cert


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_CA_KEY_BITS)


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _require_ca(ca: CertKey, what: str) -> None:
    try:
        bc = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ConfigError(
            f"cannot issue {what}: issuer {ca.cert.subject.rfc4514_string()!r} is not a CA "
            "(no basicConstraints CA:TRUE)"
        )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def make_root_ca(
    *, common_name: str = "meshproof root CA", org: str = "meshproof", valid_days: int = 3650
) -> CertKey:
    """A self-signed root: CA:TRUE and keyCertSign + cRLSign, both critical, with an SKI."""
    if valid_days <= 0:
        raise ConfigError(f"cannot make root CA {common_name!r}: valid_days must be > 0")
    key = _rsa_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    start = _now() - _CA_BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert=cert, key=key, chain=())


def make_intermediate_ca(root: CertKey, cluster: str, *, valid_days: int = 730) -> CertKey:
    """The cluster's istiod signing CA: CA:TRUE pathlen:0, SAN ``istiod.istio-system.svc``.

    Its subject names the cluster (CN and L, as Istio's ``tools/certs`` do), so a
    certificate's issuer tells which cluster's istiod signed it.
    """
    if not cluster:
        raise ConfigError("cannot make an intermediate CA: the cluster name is empty")
    if valid_days <= 0:
        raise ConfigError(
            f"cannot make intermediate CA for cluster {cluster}: valid_days must be > 0"
        )
    _require_ca(root, f"intermediate CA for cluster {cluster}")
    key = _rsa_key()
    org = root.cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(org[0].value))] if org else []
    attrs += [
        x509.NameAttribute(NameOID.LOCALITY_NAME, cluster),
        x509.NameAttribute(NameOID.COMMON_NAME, f"meshproof intermediate CA {cluster}"),
    ]
    start = _now() - _CA_BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(ISTIOD_DNS_NAME)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_aki(root.cert), critical=False)
        .sign(root.key, hashes.SHA256())
    )
    return CertKey(cert=cert, key=key, chain=(root.cert, *root.chain))


def _leaf(
    ca: CertKey,
    *,
    subject: x509.Name,
    san: x509.SubjectAlternativeName,
    eku: list[x509.ObjectIdentifier],
    ttl: datetime.timedelta,
    not_before: datetime.datetime | None,
) -> CertKey:
    if ttl <= datetime.timedelta(0):
        raise ConfigError(f"cannot issue a certificate for {san}: ttl must be positive, got {ttl}")
    start = not_before if not_before is not None else _now()
    if start.tzinfo is None:
        start = start.replace(tzinfo=datetime.UTC)
    key = _ec_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + ttl)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        # An empty subject makes the SAN the only identity, so RFC 5280 §4.2.1.6
        # wants it critical; Istio's workload certificates are shaped this way.
        .add_extension(san, critical=len(subject) == 0)
        .add_extension(_aki(ca.cert), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return CertKey(cert=cert, key=key, chain=(ca.cert, *ca.chain))


def issue_workload_cert(
    ca: CertKey,
    spiffe_id: str,
    *,
    ttl: datetime.timedelta,
    not_before: datetime.datetime | None = None,
) -> CertKey:
    """A workload (sidecar) certificate: empty subject, SAN URI = ``spiffe_id``.

    digitalSignature + keyEncipherment, EKU serverAuth + clientAuth (a sidecar
    is both the server and the client of mutual TLS). ``not_before`` defaults
    to now; a past value makes an already-aged or expired certificate.
    """
    if not spiffe_id.startswith("spiffe://"):
        raise ConfigError(f"cannot issue a workload certificate: {spiffe_id!r} is not a SPIFFE id")
    _require_ca(ca, f"workload certificate {spiffe_id}")
    return _leaf(
        ca,
        subject=x509.Name([]),
        san=x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]),
        eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        ttl=ttl,
        not_before=not_before,
    )


def issue_server_cert(
    ca: CertKey,
    dns_names: Sequence[str],
    *,
    ttl: datetime.timedelta,
    not_before: datetime.datetime | None = None,
) -> CertKey:
    """A TLS server certificate for ``dns_names`` (the ingress certificate cert-manager issues).

    CN is the first name, every name is a DNS SAN (wildcards allowed), EKU serverAuth.
    """
    names = [n for n in dns_names if n]
    if not names:
        raise ConfigError("cannot issue a server certificate: no DNS names given")
    _require_ca(ca, f"server certificate for {', '.join(names)}")
    return _leaf(
        ca,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]),
        san=x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
        eku=[ExtendedKeyUsageOID.SERVER_AUTH],
        ttl=ttl,
        not_before=not_before,
    )


def cacerts_secret_data(root: CertKey, intermediate: CertKey) -> dict[str, str]:
    """The ``cacerts`` secret's keys, as istiod reads them (values are PEM text, not base64).

    ca-cert.pem / ca-key.pem: the cluster's intermediate; root-cert.pem: the
    shared root; cert-chain.pem: intermediate then root.
    """
    if intermediate.root != root.cert:
        raise ConfigError(
            f"cannot build cacerts: intermediate {intermediate.cert.subject.rfc4514_string()!r} "
            f"does not chain to root {root.cert.subject.rfc4514_string()!r}"
        )
    return {
        "ca-cert.pem": intermediate.cert_pem().decode(),
        "ca-key.pem": intermediate.key_pem().decode(),
        "root-cert.pem": root.cert_pem().decode(),
        "cert-chain.pem": intermediate.chain_pem().decode(),
    }


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """``spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>``."""
    for label, part in (
        ("trust domain", trust_domain),
        ("namespace", namespace),
        ("service account", service_account),
    ):
        if not part or "/" in part:
            raise ConfigError(f"cannot build a SPIFFE id: {label} {part!r} is empty or has '/'")
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def cert_key_from_pem(cert_pem: bytes, key_pem: bytes, *, what: str = "PEM data") -> CertKey:
    """A ``CertKey`` from PEM: the first certificate is the subject, the rest its chain."""
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise ConfigError(f"cannot load certificate and key from {what}: {exc}") from exc
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ConfigError(f"cannot load the key from {what}: only RSA and EC keys are supported")
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != certs[0].public_key().public_bytes(*spki):
        raise ConfigError(f"cannot load {what}: the key does not belong to the certificate")
    return CertKey(cert=certs[0], key=key, chain=tuple(certs[1:]))


def load_cert_key(cert_path: Path, key_path: Path) -> CertKey:
    """Read a certificate (first PEM block; the rest is its chain) and its key from files."""
    try:
        cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot load CA from {cert_path} and {key_path}: {exc}") from exc
    return cert_key_from_pem(cert_pem, key_pem, what=f"CA files {cert_path} and {key_path}")


def tls_secret_data(ck: CertKey) -> dict[str, str]:
    """A ``kubernetes.io/tls`` Secret's keys as cert-manager writes them (PEM text, not base64).

    tls.crt: the certificate and its intermediates (not the self-signed root);
    tls.key: its key; ca.crt: the root of its chain.
    """
    intermediates = [c for c in ck.chain if c.subject != c.issuer]
    pem = serialization.Encoding.PEM
    return {
        "tls.crt": b"".join(c.public_bytes(pem) for c in (ck.cert, *intermediates)).decode(),
        "tls.key": ck.key_pem().decode(),
        "ca.crt": ck.root.public_bytes(pem).decode(),
    }


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Keys are created private rather than chmod-ed after the write.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from exc


def write_plugin_ca(out: Path, clusters: Sequence[str]) -> CertKey:
    """Write the root (reused if ``out`` already has one) and each cluster's ``cacerts`` files."""
    root_cert, root_key = out / "root-cert.pem", out / "root-key.pem"
    if root_cert.exists() and root_key.exists():
        root = load_cert_key(root_cert, root_key)
    else:
        root = make_root_ca()
        _write(root_key, root.key_pem(), secret=True)
        _write(root_cert, root.cert_pem())
    for cluster in clusters:
        data = cacerts_secret_data(root, make_intermediate_ca(root, cluster))
        for name, text in data.items():
            _write(out / cluster / name, text.encode(), secret=name.endswith("key.pem"))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m meshproof.pki --out DIR --clusters a,b``; exit 0, or 2 with one line."""
    parser = argparse.ArgumentParser(
        prog="python -m meshproof.pki",
        description="Write a shared root CA and one Istio plug-in intermediate CA per cluster.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--clusters", required=True, help="comma-separated cluster names, e.g. aws-eks,gcp-gke"
    )
    args = parser.parse_args(argv)
    clusters = [c.strip() for c in args.clusters.split(",") if c.strip()]
    try:
        if not clusters:
            raise ConfigError("no cluster names given to --clusters")
        write_plugin_ca(args.out, clusters)
    except ConfigError as exc:
        print(f"meshproof.pki: {exc}", file=sys.stderr)
        return 2
    for cluster in clusters:
        print(
            f"meshproof.pki: wrote {args.out / cluster}/{{ca-cert,ca-key,root-cert,cert-chain}}.pem"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
