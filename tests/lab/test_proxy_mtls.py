"""Sidecar inbound: PeerAuthentication modes, XFCC, trust, authorization — over real TLS."""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509

from meshproof.lab.mesh.config import (
    AuthorizationPolicy,
    AuthzRule,
    Certificate,
    parse_kube_app_probers,
)
from tests.support.mesh import MeshHarness, MeshPki, Pod, make_pki, standard_mesh, via_sidecar

pytestmark = pytest.mark.lab

URL = "http://helloworld.sample:5000"


@pytest.fixture(scope="module")
def mesh_pki() -> MeshPki:
    return make_pki()


@pytest.fixture
def mesh(mesh_pki: MeshPki) -> Iterator[tuple[MeshHarness, dict[str, Pod]]]:
    h, pods = standard_mesh(mesh_pki, net=61)
    # Only the aws v1 pod serves helloworld here, so every call lands on it.
    h.istiod.pods.remove(pods["v2"])
    h.istiod.pods.remove(pods["gcp_v1"])
    try:
        h.start()
        yield h, pods
    finally:
        h.close()


def _plaintext_get(ip: str, port: int) -> bytes:
    with socket.create_connection((ip, port), timeout=5) as s:
        s.sendall(
            b"GET /hello HTTP/1.1\r\nHost: helloworld.sample:5000\r\nConnection: close\r\n\r\n"
        )
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def _mtls_client(cert: Certificate, ip: str, port: int) -> ssl.SSLSocket:
    with tempfile.TemporaryDirectory() as d:
        chain, key = Path(d, "chain.pem"), Path(d, "key.pem")
        chain.write_text(cert.cert_chain_pem)
        key.write_text(cert.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(cadata=cert.root_bundle_pem)
        ctx.load_cert_chain(chain, key)
    raw = socket.create_connection((ip, port), timeout=5)
    return ctx.wrap_socket(
        raw, server_hostname="outbound_.5000_._.helloworld.sample.svc.cluster.local"
    )


def test_strict_resets_a_plaintext_client_and_logs_filter_chain_not_found(mesh) -> None:
    h, pods = mesh
    h.istiod.mtls["sample"] = "STRICT"
    h.push()
    v1 = pods["v1"]
    with pytest.raises(ConnectionResetError):
        _plaintext_get(v1.ip, 5000)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{v1.ip}:5000/hello", timeout=5)
    assert h.stat(v1, "listener.0.0.0.0_15006.no_filter_chain_match") == 2
    assert any("NR filter_chain_not_found" in line for line in v1.logs)
    # The mesh caller still gets through, over mutual TLS.
    assert via_sidecar(pods["sleep"], f"{URL}/hello").status_code == 200


def test_strict_negative_control_permissive_accepts_plaintext_and_mtls(mesh) -> None:
    h, pods = mesh
    v1 = pods["v1"]
    assert h.istiod.mtls.get("sample", "PERMISSIVE") == "PERMISSIVE"
    assert _plaintext_get(v1.ip, 5000).startswith(b"HTTP/1.1 200")
    assert via_sidecar(pods["sleep"], f"{URL}/hello").status_code == 200
    text = h.metrics(v1)
    dest = [
        ln
        for ln in text.splitlines()
        if ln.startswith('istio_requests_total{reporter="destination"')
    ]
    assert any(
        'connection_security_policy="none"' in ln and 'source_principal="unknown"' in ln
        for ln in dest
    )
    assert any(
        'connection_security_policy="mutual_tls"' in ln
        and f'source_principal="{pods["sleep"].spiffe}"' in ln
        for ln in dest
    )


def test_disable_serves_plaintext_only(mesh) -> None:
    h, pods = mesh
    h.istiod.mtls["sample"] = "DISABLE"
    h.push()
    assert _plaintext_get(pods["v1"].ip, 5000).startswith(b"HTTP/1.1 200")


def test_xfcc_names_server_and_caller_and_destination_reports_mutual_tls(mesh) -> None:
    h, pods = mesh
    h.istiod.mtls["sample"] = "STRICT"
    h.push()
    sleep, v1 = pods["sleep"], pods["v1"]
    r = via_sidecar(sleep, f"{URL}/headers")
    assert r.status_code == 200
    seen = {k.lower(): v for k, v in r.json()["headers"].items()}
    xfcc = seen["x-forwarded-client-cert"]
    assert sleep.cert is not None
    leaf = x509.load_pem_x509_certificate(sleep.cert.cert_chain_pem.encode())
    from cryptography.hazmat.primitives.serialization import Encoding

    digest = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    assert xfcc == f'By={v1.spiffe};Hash={digest};Subject="";URI={sleep.spiffe}'
    assert "x-envoy-peer-metadata" not in seen
    assert v1.proxy is not None
    m = v1.proxy.runtime.metrics
    assert (
        m.requests_total(
            reporter="destination",
            connection_security_policy="mutual_tls",
            source_principal=sleep.spiffe,
            destination_principal=v1.spiffe,
        )
        == 1
    )
    assert sleep.proxy is not None
    assert (
        sleep.proxy.runtime.metrics.requests_total(
            reporter="source",
            connection_security_policy="unknown",
            destination_principal=v1.spiffe,
            destination_workload="helloworld-v1",
        )
        == 1
    )


def test_a_client_certificate_from_a_foreign_root_is_refused(mesh, mesh_pki: MeshPki) -> None:
    h, pods = mesh
    v1 = pods["v1"]
    foreign = mesh_pki.workload("aws-eks", "sample", "intruder", foreign=True)
    # The intruder trusts the mesh root, so only the server's verification can fail.
    foreign = Certificate(
        foreign.cert_chain_pem, foreign.key_pem, mesh_pki.root.cert_pem().decode()
    )
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        s = _mtls_client(foreign, v1.ip, 15006)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        if not s.recv(1):  # TLS 1.3: the server's verdict arrives after the client's Finished
            raise ConnectionResetError("closed")
    assert h.stat(v1, "listener.0.0.0.0_15006.ssl.fail_verify_error") == 1
    assert h.stat(v1, "listener.0.0.0.0_15006.ssl.connection_error") == 1
    # A mesh client of the right root is accepted on the same port.
    assert pods["sleep"].cert is not None
    with _mtls_client(pods["sleep"].cert, v1.ip, 15006) as s:
        s.sendall(
            b"GET /hello HTTP/1.1\r\nHost: helloworld.sample:5000\r\nConnection: close\r\n\r\n"
        )
        assert s.recv(12) == b"HTTP/1.1 200"
    assert h.stat(v1, "listener.0.0.0.0_15006.ssl.handshake") >= 1


def test_a_sidecar_with_a_foreign_certificate_cannot_reach_the_mesh(mesh, mesh_pki) -> None:
    h, pods = mesh
    sleep = pods["sleep"]
    sleep.cert = mesh_pki.workload("aws-eks", "sample", "sleep", foreign=True)
    h.push()
    r = via_sidecar(sleep, f"{URL}/hello")
    assert r.status_code == 503
    assert r.text.startswith("upstream connect error or disconnect/reset before headers")
    cluster = "cluster.outbound|5000||helloworld.sample.svc.cluster.local;."
    assert h.stat(sleep, cluster + "ssl.fail_verify_error") >= 1
    assert h.stat(sleep, cluster + "upstream_cx_connect_fail") >= 1


def test_authorization_policy_denies_with_rbac_access_denied(mesh) -> None:
    h, pods = mesh
    h.istiod.mtls["sample"] = "STRICT"
    h.istiod.policies["sample/helloworld"] = [
        AuthorizationPolicy(
            name="only-gcp-sleep",
            action="ALLOW",
            rules=[AuthzRule(principals=["cluster.local/ns/sample/sa/not-sleep"])],
        )
    ]
    h.push()
    r = via_sidecar(pods["sleep"], f"{URL}/hello")
    assert (r.status_code, r.text) == (403, "RBAC: access denied")
    h.istiod.policies["sample/helloworld"] = [
        AuthorizationPolicy(
            name="allow-sleep",
            rules=[
                AuthzRule(
                    principals=["cluster.local/ns/sample/sa/sleep"],
                    paths=["/hello"],
                    methods=["GET"],
                )
            ],
        )
    ]
    h.push()
    assert via_sidecar(pods["sleep"], f"{URL}/hello").status_code == 200
    assert via_sidecar(pods["sleep"], f"{URL}/headers").status_code == 403


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
def test_openssl_s_client_shows_the_chain_to_the_root_and_the_spiffe_san(mesh, mesh_pki) -> None:
    _, pods = mesh
    v1, sleep = pods["v1"], pods["sleep"]
    assert sleep.cert is not None
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for name, text in (
            ("cert", sleep.cert.cert_chain_pem),
            ("key", sleep.cert.key_pem),
            ("ca", sleep.cert.root_bundle_pem),
        ):
            paths[name] = Path(d, f"{name}.pem")
            paths[name].write_text(text)
        out = subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"{v1.ip}:15006",
                "-showcerts",
                "-cert",
                str(paths["cert"]),
                "-key",
                str(paths["key"]),
                "-CAfile",
                str(paths["ca"]),
            ],
            input=b"",
            capture_output=True,
            timeout=20,
            check=False,
        ).stdout.decode()
    assert "Verify return code: 0 (ok)" in out
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.DOTALL)
    certs = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
    assert certs[-1] == mesh_pki.root.cert
    san = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [v1.spiffe]


def test_a_peer_with_an_unexpected_identity_fails_the_san_check(mesh, mesh_pki) -> None:
    h, pods = mesh
    v1 = pods["v1"]
    # Same trust root, wrong service account: the chain verifies, the SAN does not.
    v1.cert = mesh_pki.workload("aws-eks", "sample", "impostor")
    h.push()
    r = via_sidecar(pods["sleep"], f"{URL}/hello")
    assert r.status_code == 503
    cluster = "cluster.outbound|5000||helloworld.sample.svc.cluster.local;."
    assert h.stat(pods["sleep"], cluster + "ssl.fail_verify_san") >= 1
    assert 'response_flags="UF,URX"' in h.metrics(pods["sleep"])


def test_origin_form_requests_with_a_host_header_are_routed_too(mesh) -> None:
    _, pods = mesh
    with socket.create_connection((pods["sleep"].ip, 15001), timeout=5) as s:
        s.sendall(
            b"GET /hello HTTP/1.1\r\nHost: helloworld.sample.svc:5000\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"instance: helloworld-v1" in data


def test_rewritten_kubelet_probes_reach_the_app_under_strict(mesh) -> None:
    h, pods = mesh
    h.istiod.mtls["sample"] = "STRICT"
    v1 = pods["v1"]
    cfg = h.istiod.config_for(v1)
    cfg.app_probers = parse_kube_app_probers(
        '{"/app-health/helloworld/readyz": {"httpGet": {"path": "/hello", "port": 5000}, '
        '"timeoutSeconds": 1}, "/app-health/helloworld/livez": {"tcpSocket": {"port": 5000}}}'
    )
    assert v1.proxy is not None and v1.app_server is not None
    h.loop.run(v1.proxy.apply(cfg))
    base = f"http://{v1.ip}:15020/app-health/helloworld"
    assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
    assert requests.get(f"{base}/livez", timeout=5).status_code == 200
    v1.app_server.fail_status = 503
    assert requests.get(f"{base}/readyz", timeout=5).status_code == 503
    assert requests.get(f"{base}/startupz", timeout=5).status_code == 404
