"""The proxy's pure parts: config JSON, SNI names and ClientHello parsing, outlier arithmetic,
stat naming, host resolution."""

from __future__ import annotations

import json
import ssl

import pytest

from meshproof.errors import ConfigError
from meshproof.lab.mesh.config import (
    AuthorizationPolicy,
    AuthzRule,
    Certificate,
    ConnectionPool,
    Endpoint,
    Fault,
    HeaderMatch,
    HttpRoute,
    Identity,
    Inbound,
    InboundPort,
    OutboundCluster,
    OutlierDetection,
    ProxyConfig,
    RouteDestination,
    RouteMatch,
    VirtualHost,
    cluster_name,
    parse_sni,
    sni_for,
)
from meshproof.lab.mesh.outbound import join_flags
from meshproof.lab.mesh.outlier import HostHealth, OutlierDetector
from meshproof.lab.mesh.routing import fqdn_candidates
from meshproof.lab.mesh.stats import EnvoyStats, StatKey
from meshproof.lab.mesh.tls import client_hello_complete, client_hello_sni

pytestmark = pytest.mark.lab

FQDN = "helloworld.sample.svc.cluster.local"


def _config() -> ProxyConfig:
    return ProxyConfig(
        mode="sidecar",
        version="42",
        identity=Identity(
            cluster="aws-eks",
            network="network1",
            namespace="sample",
            workload="sleep",
            service_account="sleep",
            pod_ip="127.1.0.10",
        ),
        certificate=Certificate("chain", "key", "roots"),
        inbound=Inbound(
            ports=[InboundPort(port=5000, app_port=25000, mtls_mode="STRICT")],
            policies=[
                AuthorizationPolicy(name="p", action="DENY", rules=[AuthzRule(namespaces=["x"])])
            ],
        ),
        clusters=[
            OutboundCluster(
                service=FQDN,
                port=5000,
                subset="v1",
                endpoints=[
                    Endpoint(
                        "127.2.0.100",
                        15443,
                        cluster="gcp-gke",
                        sni=sni_for(5000, FQDN, "v1"),
                        labels={"app": "helloworld"},
                    )
                ],
                connection_pool=ConnectionPool(max_connections=1),
                outlier_detection=OutlierDetection(max_ejection_percent=50),
            )
        ],
        virtual_hosts=[
            VirtualHost(
                domains=[FQDN],
                port=5000,
                routes=[
                    HttpRoute(
                        matches=[
                            RouteMatch(headers=[HeaderMatch("env", exact="canary")], uri_prefix="/")
                        ],
                        destinations=[RouteDestination(FQDN, 5000, "v1", 90)],
                        timeout=1.5,
                        fault=Fault(delay=0.1, delay_percentage=50.0),
                    )
                ],
            )
        ],
    )


def test_config_round_trips_through_json() -> None:
    cfg = _config()
    again = ProxyConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.clusters[0].name == "outbound|5000|v1|helloworld.sample.svc.cluster.local"
    assert again.identity.spiffe == "spiffe://cluster.local/ns/sample/sa/sleep"


def test_config_defaults_are_istios() -> None:
    od, pool = OutlierDetection(), ConnectionPool()
    assert (
        od.consecutive_5xx_errors,
        od.interval,
        od.base_ejection_time,
        od.max_ejection_percent,
    ) == (5, 10.0, 30.0, 10)
    assert pool.max_connections == pool.http1_max_pending_requests == 2**32 - 1
    route = HttpRoute(destinations=[])
    assert route.retries.attempts == 2 and route.retries.retriable_status_codes == [503]
    assert route.timeout is None


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["inbound"]["ports"][0].update(mtls_mode="STRICTER"), "mtls_mode"),
        (lambda d: d["clusters"][0].update(port="5000"), "clusters[0].port"),
        (lambda d: d.update(surprise=1), "surprise"),
    ],
)
def test_bad_config_names_the_field(mutate, field: str) -> None:
    data = json.loads(_config().to_json())
    mutate(data)
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        ProxyConfig.from_dict(data)


def test_sni_names() -> None:
    assert sni_for(5000, FQDN) == "outbound_.5000_._.helloworld.sample.svc.cluster.local"
    assert parse_sni(sni_for(5000, FQDN, "v2")) == (5000, "v2", FQDN)
    assert parse_sni("api.example.com") is None
    assert cluster_name(80, "x.ns.svc.cluster.local") == "outbound|80||x.ns.svc.cluster.local"


def _client_hello(server_name: str) -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_client_hello_sni_is_read_from_a_real_client_hello() -> None:
    hello = _client_hello(sni_for(5000, FQDN))
    assert client_hello_complete(hello)
    assert not client_hello_complete(hello[:40])
    assert client_hello_sni(hello) == "outbound_.5000_._.helloworld.sample.svc.cluster.local"
    assert client_hello_sni(b"GET / HTTP/1.1\r\n\r\n") is None
    assert client_hello_complete(b"GET / HTTP/1.1\r\n\r\n")  # not TLS: nothing more to wait for


def test_outlier_ejection_respects_max_ejection_percent_and_multiplies_base_time() -> None:
    now = [0.0]
    stats = EnvoyStats()
    hosts = [HostHealth() for _ in range(2)]
    det = OutlierDetector(
        "c", OutlierDetection(max_ejection_percent=50), stats, clock=lambda: now[0]
    )
    for _ in range(4):
        det.record(hosts[0], 503, hosts)
    assert not hosts[0].ejected
    det.record(hosts[0], None, hosts)  # a connect failure counts as a 5xx
    assert hosts[0].ejected and hosts[0].ejections == 1
    for _ in range(5):
        det.record(hosts[1], 500, hosts)
    assert not hosts[1].ejected  # 2 of 2 would be 100 % > 50 %
    assert stats.value("cluster", "c", "outlier_detection.ejections_overflow") == 1
    now[0] = 30.0
    det.refresh(hosts)
    assert not hosts[0].ejected
    for _ in range(5):
        det.record(hosts[0], 503, hosts)
    now[0] = 30.0 + 59.0
    det.refresh(hosts)
    assert hosts[0].ejected  # second ejection lasts 2 × 30 s
    now[0] = 30.0 + 60.0
    det.refresh(hosts)
    assert not hosts[0].ejected
    assert stats.value("cluster", "c", "outlier_detection.ejections_enforced_consecutive_5xx") == 2


def test_a_success_resets_the_consecutive_count() -> None:
    stats = EnvoyStats()
    hosts = [HostHealth() for _ in range(10)]
    det = OutlierDetector("c", OutlierDetection(), stats)
    for status in (503, 503, 503, 503, 200, 503, 503, 503, 503):
        det.record(hosts[0], status, hosts)
    assert not hosts[0].ejected
    det.record(hosts[0], 503, hosts)
    assert hosts[0].ejected  # 1 of 10 hosts = 10 %, within the default maximum


def test_stat_names_in_text_and_prometheus_form() -> None:
    key = StatKey("cluster", "outbound|80||x.ns.svc.cluster.local", "upstream_rq_pending_overflow")
    assert (
        key.text_name == "cluster.outbound|80||x.ns.svc.cluster.local;.upstream_rq_pending_overflow"
    )
    assert key.prometheus() == (
        "envoy_cluster_upstream_rq_pending_overflow",
        [("cluster_name", "outbound|80||x.ns.svc.cluster.local")],
    )
    assert StatKey("cluster", "c", "upstream_rq_503").prometheus() == (
        "envoy_cluster_upstream_rq",
        [("response_code", "503"), ("cluster_name", "c")],
    )
    assert StatKey("listener", "0.0.0.0_15006", "ssl.handshake").prometheus() == (
        "envoy_listener_ssl_handshake",
        [("listener_address", "0.0.0.0_15006")],
    )
    assert StatKey("", "", "server.state").prometheus() == ("envoy_server_state", [])


def test_short_names_resolve_like_a_pods_search_path() -> None:
    assert fqdn_candidates("helloworld", "sample") == [FQDN]
    assert fqdn_candidates("helloworld.sample", "other")[0] == FQDN
    assert fqdn_candidates("helloworld.sample.svc", "other")[0] == FQDN
    assert fqdn_candidates(FQDN, "other") == [FQDN]


def test_response_flags_use_envoys_short_form_and_order() -> None:
    assert join_flags([]) == "-"
    assert join_flags(["URX", "UF"]) == "UF,URX"
    assert join_flags(["DI", "UT"]) == "UT,DI"
    assert join_flags(["DI", "FI", "-"]) == "DI,FI"
