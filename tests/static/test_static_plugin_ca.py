"""What `python -m meshproof.pki` writes for the kind bootstrap has what Istio's plug-in CA
needs, as openssl (not the library that made it) reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pki_checks import openssl_verify, require_openssl

pytestmark = pytest.mark.static

CLUSTERS = ("aws-eks", "gcp-gke")


def _openssl(*args: str, stdin: bytes | None = None) -> str:
    res = subprocess.run(
        [require_openssl(), *args], input=stdin, capture_output=True, timeout=10, check=False
    )
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode()


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ca")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "meshproof.pki",
            "--out",
            str(out),
            "--clusters",
            ",".join(CLUSTERS),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return out


def _text(path: Path) -> str:
    return _openssl("x509", "-in", str(path), "-noout", "-text")


def _fingerprints(pem: bytes) -> list[str]:
    blocks = pem.split(b"-----END CERTIFICATE-----")
    return [
        _openssl(
            "x509", "-noout", "-fingerprint", "-sha256", stdin=b + b"-----END CERTIFICATE-----\n"
        )
        for b in blocks
        if b.strip()
    ]


def test_layout(ca_dir: Path) -> None:
    assert (ca_dir / "root-cert.pem").is_file() and (ca_dir / "root-key.pem").is_file()
    for cluster in CLUSTERS:
        names = sorted(p.name for p in (ca_dir / cluster).iterdir())
        assert names == ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"]
        assert (ca_dir / cluster / "root-cert.pem").read_bytes() == (
            ca_dir / "root-cert.pem"
        ).read_bytes()


def test_root_is_a_ca(ca_dir: Path) -> None:
    text = _text(ca_dir / "root-cert.pem")
    assert "X509v3 Basic Constraints: critical" in text and "CA:TRUE" in text
    assert "X509v3 Key Usage: critical" in text and "Certificate Sign" in text
    assert "sha256WithRSAEncryption" in text


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_intermediate_is_what_istiod_expects(ca_dir: Path, cluster: str) -> None:
    text = _text(ca_dir / cluster / "ca-cert.pem")
    assert "CA:TRUE, pathlen:0" in text
    assert "DNS:istiod.istio-system.svc" in text
    assert "Certificate Sign" in text
    assert cluster in text.split("Subject:")[1].splitlines()[0]
    res = openssl_verify(ca_dir / "root-cert.pem", ca_dir / cluster / "ca-cert.pem")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_cert_chain_is_intermediate_then_root(ca_dir: Path, cluster: str) -> None:
    chain = _fingerprints((ca_dir / cluster / "cert-chain.pem").read_bytes())
    expected = [
        *_fingerprints((ca_dir / cluster / "ca-cert.pem").read_bytes()),
        *_fingerprints((ca_dir / "root-cert.pem").read_bytes()),
    ]
    assert chain == expected


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_key_matches_its_certificate(ca_dir: Path, cluster: str) -> None:
    from_cert = _openssl("x509", "-in", str(ca_dir / cluster / "ca-cert.pem"), "-noout", "-pubkey")
    from_key = _openssl("pkey", "-in", str(ca_dir / cluster / "ca-key.pem"), "-pubout")
    assert from_cert == from_key


def test_clusters_have_their_own_intermediate(ca_dir: Path) -> None:
    a, b = (_fingerprints((ca_dir / c / "ca-cert.pem").read_bytes()) for c in CLUSTERS)
    assert a != b
