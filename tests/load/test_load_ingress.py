"""The ingress locustfile: connect to an address, speak to the gateway host, verify its CA."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshproof import pki
from meshproof.load import LoadPlan, LoadResult, bundled_locustfile, run_load
from tests.support.load_servers import LoadTarget, load_target

pytestmark = pytest.mark.load

GATEWAY_HOST = "api.example.com"
GATEWAY_ADDRESS = "127.0.0.7"


@dataclass
class _Gateway:
    target: LoadTarget
    ca_file: Path
    foreign_ca_file: Path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Gateway]:
    """A TLS server for *.example.com on a loopback address that no name resolves to."""
    pem = tmp_path_factory.mktemp("pki")
    root = pki.make_root_ca()
    server = pki.issue_server_cert(root, ["*.example.com"], ttl=datetime.timedelta(days=1))
    (pem / "ca.pem").write_bytes(root.cert_pem())
    (pem / "foreign-ca.pem").write_bytes(pki.make_root_ca(common_name="someone else").cert_pem())
    (pem / "chain.pem").write_bytes(server.chain_pem())
    (pem / "key.pem").write_bytes(server.key_pem())
    with load_target(
        delay_s=0.01, host=GATEWAY_ADDRESS, tls_cert=(pem / "chain.pem", pem / "key.pem")
    ) as target:
        yield _Gateway(target, pem / "ca.pem", pem / "foreign-ca.pem")


def _ingress(
    gateway: _Gateway, ca_file: Path, output_dir: Path, *, run_time_s: float = 1, **options: str
) -> LoadResult:
    return run_load(
        LoadPlan(
            locustfile=bundled_locustfile("ingress"),
            host=f"https://{GATEWAY_HOST}",
            users=2,
            spawn_rate=100,
            run_time_s=run_time_s,
            options={
                "connect-to": f"{GATEWAY_ADDRESS}:{gateway.target.port}",
                "ca-file": str(ca_file),
                **options,
            },
            output_dir=output_dir,
        )
    )


def test_ingress_speaks_to_the_gateway_host(gateway: _Gateway, tmp_path: Path) -> None:
    result = _ingress(gateway, gateway.ca_file, tmp_path)
    assert result.requests > 0 and result.failures == 0
    with gateway.target.lock:
        assert set(gateway.target.hosts) == {GATEWAY_HOST}
        assert set(gateway.target.server_names) == {GATEWAY_HOST}
    assert result.status_counts == {200: result.requests}


def test_ingress_rejects_a_certificate_from_another_ca(gateway: _Gateway, tmp_path: Path) -> None:
    result = _ingress(gateway, gateway.foreign_ca_file, tmp_path)
    assert result.requests > 0
    assert result.failures_by_kind == {"tls": result.requests}


def test_user_rps_paces_each_user(gateway: _Gateway, tmp_path: Path) -> None:
    # Back to back, two users make hundreds of 10 ms requests in 3 s; paced at 5 a second, ~30.
    result = _ingress(gateway, gateway.ca_file, tmp_path, run_time_s=3, **{"user-rps": "5"})
    assert result.failures == 0
    assert 16 <= result.requests <= 34
