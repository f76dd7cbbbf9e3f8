"""The plug-in CA generator: chains verify with openssl, X.509 properties Istio relies on, mTLS works."""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from meshproof import pki
from meshproof.errors import ConfigError
from tests.support.pki_checks import openssl_verify

HOUR = datetime.timedelta(hours=1)


@pytest.fixture(scope="module")
def root() -> pki.CertKey:
    return pki.make_root_ca()


@pytest.fixture(scope="module")
def inter(root: pki.CertKey) -> pki.CertKey:
    return pki.make_intermediate_ca(root, "aws-eks")


@pytest.fixture(scope="module")
def other_inter(root: pki.CertKey) -> pki.CertKey:
    return pki.make_intermediate_ca(root, "gcp-gke")


@pytest.fixture(scope="module")
def workload(inter: pki.CertKey) -> pki.CertKey:
    return pki.issue_workload_cert(
        inter, pki.spiffe_id("cluster.local", "sample", "helloworld"), ttl=24 * HOUR
    )


def _ext(cert: x509.Certificate, cls: type[x509.ExtensionType]) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def test_openssl_verifies_leaf_through_intermediate(
    tmp_path: Path, root: pki.CertKey, inter: pki.CertKey, workload: pki.CertKey
) -> None:
    ca = _write(tmp_path, "root.pem", root.cert_pem())
    mid = _write(tmp_path, "inter.pem", inter.cert_pem())
    leaf = _write(tmp_path, "leaf.pem", workload.cert_pem())
    for purpose in ("sslserver", "sslclient"):
        res = openssl_verify(ca, leaf, untrusted=mid, purpose=purpose)
        assert res.returncode == 0, res.stdout + res.stderr
    # Without the intermediate the leaf cannot be chained to the root.
    assert openssl_verify(ca, leaf).returncode != 0


def test_foreign_root_fails_verification(
    tmp_path: Path, inter: pki.CertKey, workload: pki.CertKey
) -> None:
    foreign = pki.make_root_ca(common_name="foreign root CA", org="elsewhere")
    ca = _write(tmp_path, "foreign.pem", foreign.cert_pem())
    mid = _write(tmp_path, "inter.pem", inter.cert_pem())
    leaf = _write(tmp_path, "leaf.pem", workload.cert_pem())
    res = openssl_verify(ca, leaf, untrusted=mid)
    assert res.returncode != 0
    assert "unable to get" in (res.stdout + res.stderr)


def test_expired_workload_cert_fails_verification(
    tmp_path: Path, root: pki.CertKey, inter: pki.CertKey
) -> None:
    old = datetime.datetime.now(datetime.UTC) - 2 * HOUR
    expired = pki.issue_workload_cert(
        inter, "spiffe://cluster.local/ns/sample/sa/x", ttl=HOUR, not_before=old
    )
    ca = _write(tmp_path, "root.pem", root.cert_pem())
    mid = _write(tmp_path, "inter.pem", inter.cert_pem())
    leaf = _write(tmp_path, "leaf.pem", expired.cert_pem())
    res = openssl_verify(ca, leaf, untrusted=mid)
    assert res.returncode != 0
    assert "expired" in (res.stdout + res.stderr)


def test_root_ca_properties(root: pki.CertKey) -> None:
    cert = root.cert
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "meshproof root CA"
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    _ext(cert, x509.SubjectKeyIdentifier)
    assert isinstance(root.key, rsa.RSAPrivateKey)
    assert cert.signature_hash_algorithm is not None
    assert cert.signature_hash_algorithm.name == "sha256"
    assert root.chain == () and root.root == cert
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=3650)


def test_intermediate_ca_properties(root: pki.CertKey, inter: pki.CertKey) -> None:
    cert = inter.cert
    assert cert.issuer == root.cert.subject
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert "aws-eks" in str(cn)
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert _ext(cert, x509.KeyUsage).value.key_cert_sign
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["istiod.istio-system.svc"]
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    root_ski = _ext(root.cert, x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    cert.verify_directly_issued_by(root.cert)
    assert inter.chain == (root.cert,)


def test_workload_cert_properties(inter: pki.CertKey, workload: pki.CertKey) -> None:
    cert = workload.cert
    assert len(cert.subject) == 0
    san = _ext(cert, x509.SubjectAlternativeName)
    assert san.critical  # the only identity of an empty-subject certificate
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["spiffe://cluster.local/ns/sample/sa/helloworld"]
    ku = _ext(cert, x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    eku = list(_ext(cert, x509.ExtendedKeyUsage).value)
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert not _ext(cert, x509.BasicConstraints).value.ca
    assert isinstance(workload.key, ec.EllipticCurvePrivateKey)
    assert isinstance(workload.key.curve, ec.SECP256R1)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == 24 * HOUR
    cert.verify_directly_issued_by(inter.cert)


def test_server_cert_properties(inter: pki.CertKey) -> None:
    ck = pki.issue_server_cert(inter, ["*.example.com", "api.example.com"], ttl=HOUR)
    cn = ck.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "*.example.com"
    names = _ext(ck.cert, x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["*.example.com", "api.example.com"]
    assert list(_ext(ck.cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_not_before_is_honoured(inter: pki.CertKey) -> None:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    ck = pki.issue_server_cert(inter, ["a.example.com"], ttl=HOUR, not_before=start)
    assert ck.cert.not_valid_before_utc == start
    assert ck.cert.not_valid_after_utc == start + HOUR


def test_chain_order(root: pki.CertKey, inter: pki.CertKey, workload: pki.CertKey) -> None:
    assert workload.chain == (inter.cert, root.cert)
    pems = x509.load_pem_x509_certificates(workload.chain_pem())
    assert pems == [workload.cert, inter.cert, root.cert]
    assert workload.root == root.cert


def test_cacerts_secret_data(root: pki.CertKey, inter: pki.CertKey) -> None:
    data = pki.cacerts_secret_data(root, inter)
    assert set(data) == {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}
    assert x509.load_pem_x509_certificate(data["ca-cert.pem"].encode()) == inter.cert
    assert x509.load_pem_x509_certificate(data["root-cert.pem"].encode()) == root.cert
    chain = x509.load_pem_x509_certificates(data["cert-chain.pem"].encode())
    assert chain == [inter.cert, root.cert]
    assert "PRIVATE KEY" in data["ca-key.pem"]


def test_cacerts_refuses_intermediate_of_another_root(inter: pki.CertKey) -> None:
    with pytest.raises(ConfigError, match="does not chain"):
        pki.cacerts_secret_data(pki.make_root_ca(common_name="other"), inter)


def test_leaf_cannot_issue(workload: pki.CertKey) -> None:
    with pytest.raises(ConfigError, match="is not a CA"):
        pki.issue_server_cert(workload, ["x.example.com"], ttl=HOUR)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("cluster.local", "ns", ""), "service account"),
        (("cluster.local", "a/b", "sa"), "namespace"),
        (("", "ns", "sa"), "trust domain"),
    ],
)
def test_spiffe_id_rejects_bad_parts(args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pki.spiffe_id(*args)


def test_spiffe_id_shape() -> None:
    assert pki.spiffe_id("cluster.local", "foo", "curl") == "spiffe://cluster.local/ns/foo/sa/curl"


def test_bad_arguments_raise_config_error(inter: pki.CertKey) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        pki.issue_workload_cert(inter, "spiffe://cluster.local/ns/a/sa/b", ttl=-HOUR)
    with pytest.raises(ConfigError, match="not a SPIFFE id"):
        pki.issue_workload_cert(inter, "https://x", ttl=HOUR)
    with pytest.raises(ConfigError, match="no DNS names"):
        pki.issue_server_cert(inter, [], ttl=HOUR)


def _context(
    ck: pki.CertKey, tmp: Path, name: str, purpose: ssl.Purpose, root: pki.CertKey
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose)
    # SPIFFE ids are URIs, not host names: identity is checked from the peer's SAN below.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=root.cert_pem().decode())
    chain = _write(tmp, f"{name}-chain.pem", ck.chain_pem())
    key = _write(tmp, f"{name}-key.pem", ck.key_pem())
    ctx.load_cert_chain(chain, key)
    return ctx


def test_workload_certs_from_both_clusters_do_mutual_tls(
    tmp_path: Path, root: pki.CertKey, inter: pki.CertKey, other_inter: pki.CertKey
) -> None:
    """A server in aws-eks and a client in gcp-gke authenticate each other through the shared root."""
    server_ck = pki.issue_workload_cert(
        inter, pki.spiffe_id("cluster.local", "sample", "helloworld"), ttl=HOUR
    )
    client_ck = pki.issue_workload_cert(
        other_inter, pki.spiffe_id("cluster.local", "sample", "curl"), ttl=HOUR
    )
    server_ctx = _context(server_ck, tmp_path, "server", ssl.Purpose.CLIENT_AUTH, root)
    client_ctx = _context(client_ck, tmp_path, "client", ssl.Purpose.SERVER_AUTH, root)
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    seen: dict[str, object] = {}

    def serve() -> None:
        with server_ctx.wrap_socket(a, server_side=True) as tls:
            seen["client"] = tls.getpeercert()
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with client_ctx.wrap_socket(b) as tls:
        server_cert = tls.getpeercert()
        assert tls.recv(2) == b"ok"
    thread.join(timeout=10)
    assert server_cert is not None and seen["client"]
    assert ("URI", "spiffe://cluster.local/ns/sample/sa/helloworld") in server_cert[
        "subjectAltName"
    ]
    client_cert = seen["client"]
    assert isinstance(client_cert, dict)
    assert ("URI", "spiffe://cluster.local/ns/sample/sa/curl") in client_cert["subjectAltName"]


def test_cli_writes_plugin_ca_and_reuses_root(tmp_path: Path) -> None:
    out = tmp_path / "ca"
    assert pki.main(["--out", str(out), "--clusters", "aws-eks,gcp-gke"]) == 0
    for cluster in ("aws-eks", "gcp-gke"):
        for name in ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"):
            assert (out / cluster / name).is_file()
        assert stat.S_IMODE((out / cluster / "ca-key.pem").stat().st_mode) == 0o600
        res = openssl_verify(out / "root-cert.pem", out / cluster / "ca-cert.pem")
        assert res.returncode == 0, res.stdout + res.stderr
    assert stat.S_IMODE((out / "root-key.pem").stat().st_mode) == 0o600
    first_root = (out / "root-cert.pem").read_bytes()
    assert pki.main(["--out", str(out), "--clusters", "aws-eks"]) == 0
    assert (out / "root-cert.pem").read_bytes() == first_root
    assert (out / "aws-eks" / "root-cert.pem").read_bytes() == first_root


def test_cli_reports_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "root-cert.pem").write_text("not a certificate")
    (tmp_path / "root-key.pem").write_text("not a key")
    assert pki.main(["--out", str(tmp_path), "--clusters", "aws-eks"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("meshproof.pki: cannot load certificate and key from CA files")
    assert "\n" not in err


def test_cert_key_round_trips_through_pem(inter: pki.CertKey, workload: pki.CertKey) -> None:
    again = pki.cert_key_from_pem(workload.chain_pem(), workload.key_pem())
    assert again.cert == workload.cert and again.chain == workload.chain
    assert again.key_pem() == workload.key_pem()
    with pytest.raises(ConfigError, match="does not belong"):
        pki.cert_key_from_pem(workload.cert_pem(), inter.key_pem())


def test_tls_secret_data_is_what_cert_manager_writes(root: pki.CertKey, inter: pki.CertKey) -> None:
    ck = pki.issue_server_cert(inter, ["api.example.com"], ttl=HOUR)
    data = pki.tls_secret_data(ck)
    assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
    assert x509.load_pem_x509_certificates(data["tls.crt"].encode()) == [ck.cert, inter.cert]
    assert x509.load_pem_x509_certificate(data["ca.crt"].encode()) == root.cert
    # A CA issuer that is itself a self-signed root (cert-manager's bootstrap) adds no chain.
    direct = pki.issue_server_cert(root, ["api.example.com"], ttl=HOUR)
    tls = pki.tls_secret_data(direct)
    assert x509.load_pem_x509_certificates(tls["tls.crt"].encode()) == [direct.cert]
    assert (
        pki.cert_key_from_pem(tls["tls.crt"].encode(), tls["tls.key"].encode()).cert == direct.cert
    )
