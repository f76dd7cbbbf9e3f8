"""XC-LATENCY's client-side cross-check: Locust's exact latencies through an ingress gateway.

The rule (docs/load.md): the clients' exact share at or under the bound must
reach the quantile, judged only when enough of the load crossed clusters for
the cross-cluster quantile to show, and never "held" on too few requests.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshproof.checks.latency import (
    ingress_crossing_query,
    ingress_last_scrape_query,
    judge_client_latency,
)
from meshproof.sli.verdict import Verdict

HALF_CROSSED = {"aws-eks": 500.0, "gcp-gke": 500.0}


def _judge(latencies: list[float], *, failures: int = 0,
           served_by: dict[str, float] | None = None, min_samples: int = 100,
           server: Verdict | None = None) -> tuple[Verdict, str]:
    judgement = judge_client_latency(
        latencies, failures=failures,
        served_by=HALF_CROSSED if served_by is None else served_by, cluster="aws-eks",
        quantile=0.95, max_ms=100, min_samples=min_samples, server=server)
    return judgement.verdict, judgement.reason


def test_a_fast_path_holds_and_a_slow_wan_violates() -> None:
    assert _judge([5.0] * 1000)[0] is Verdict.HELD
    # slow-wan: every request that crossed took ~160 ms, the local half ~5 ms.
    verdict, reason = _judge([5.0] * 500 + [160.0] * 500)
    assert verdict is Verdict.VIOLATED
    assert "50% of 1000 answered requests took <= 100 ms" in reason
    assert "exact p95 = 160 ms" in reason


def test_the_share_is_exact_and_the_bound_counts_as_under() -> None:
    assert _judge([100.0] * 95 + [100.001] * 5)[0] is Verdict.HELD  # exactly 95%
    assert _judge([10.0] * 94 + [100.001] * 6)[0] is Verdict.VIOLATED


def test_disagreeing_with_a_histogram_that_held_is_said() -> None:
    verdict, reason = _judge([5.0] * 500 + [160.0] * 500, server=Verdict.HELD)
    assert verdict is Verdict.VIOLATED
    assert "the Istio histogram held" in reason
    assert "histogram" not in _judge([5.0] * 500 + [160.0] * 500, server=Verdict.VIOLATED)[1]


def test_too_few_answered_requests_are_inconclusive_never_held() -> None:
    assert _judge([5.0] * 99)[0] is Verdict.INCONCLUSIVE
    assert _judge([160.0] * 99)[0] is Verdict.INCONCLUSIVE


def test_failed_requests_are_counted_not_timed() -> None:
    assert _judge([5.0] * 100, failures=900)[0] is Verdict.HELD
    assert _judge([], failures=50)[0] is Verdict.NOT_MEASURABLE


def test_a_load_that_barely_crossed_cannot_judge_the_cross_cluster_bound() -> None:
    # 4% crossed: even if all of those were slow, 96% of the clients' requests would be fast.
    verdict, reason = _judge([5.0] * 1000, served_by={"aws-eks": 960.0, "gcp-gke": 40.0})
    assert verdict is Verdict.NOT_MEASURABLE
    assert "only 4% of the load crossed" in reason
    assert _judge([5.0] * 1000, served_by={"aws-eks": 950.0, "gcp-gke": 50.0})[0] is Verdict.HELD
    assert _judge([5.0] * 1000, served_by={"aws-eks": 1000.0})[0] is Verdict.NOT_MEASURABLE
    assert _judge([5.0] * 1000, served_by={})[0] is Verdict.NOT_MEASURABLE


@settings(max_examples=200, deadline=None)
@given(fast=st.integers(0, 400), slow=st.integers(0, 400),
       crossed=st.floats(0.05, 1.0))
def test_held_exactly_when_the_share_reaches_the_quantile(fast: int, slow: int,
                                                          crossed: float) -> None:
    served = {"aws-eks": 1000 * (1 - crossed), "gcp-gke": 1000 * crossed}
    verdict, _ = _judge([50.0] * fast + [150.0] * slow, served_by=served, min_samples=1)
    if fast + slow == 0:
        assert verdict is Verdict.NOT_MEASURABLE
    else:
        assert (verdict is Verdict.HELD) == (fast * 20 >= (fast + slow) * 19)
        assert verdict in (Verdict.HELD, Verdict.VIOLATED)


def test_queries_name_the_gateway_of_the_cluster_and_the_backend() -> None:
    query = ingress_crossing_query("aws-eks", "api-service", 61)
    assert query == (
        'sum by (destination_cluster) (increase(istio_requests_total{reporter="source",'
        'source_cluster="aws-eks",source_workload="istio-ingressgateway",'
        'destination_service_name="api-service"}[61s]))')
    assert ingress_last_scrape_query("gcp-gke", "api-service").startswith(
        'max(timestamp(istio_requests_total{reporter="source",source_cluster="gcp-gke"')
