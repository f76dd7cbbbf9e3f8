"""Our SLI math gives the numbers a real Prometheus gives, through the real client.

Histograms and counters with known samples are backfilled into a Prometheus
started on loopback; ``histogram_quantile``, bucket ratios and ``increase`` are
queried through ``prometheus_api_client.PrometheusConnect`` and compared with
``meshproof.sli``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_api_client import PrometheusConnect

from meshproof.sli import (
    ISTIO_DURATION_BUCKETS_MS,
    bucket_observations,
    histogram_quantile,
    prometheus_increase,
    share_at_or_below,
)
from tests.support.prometheus_server import missing_binaries, running_prometheus

pytestmark = pytest.mark.prometheus

AT = 1_700_000_000  # every histogram sample is written at this instant and queried there
REL = 1e-9

Histogram = list[tuple[str, float]]  # (le label as written, cumulative count)


def _le(bound: float) -> str:
    if math.isinf(bound):
        return "+Inf"
    return str(int(bound)) if bound.is_integer() else repr(bound)


def _istio(values: list[float]) -> Histogram:
    return [(_le(b), c) for b, c in bucket_observations(values, ISTIO_DURATION_BUCKETS_MS)]


def _distributions() -> dict[str, Histogram]:
    rng = random.Random(20261126)
    return {
        "lognormal": _istio([rng.lognormvariate(3.5, 1.0) for _ in range(5000)]),
        "wan_bimodal": _istio(
            [rng.gauss(8, 2) for _ in range(900)] + [rng.gauss(140, 30) for _ in range(100)]
        ),
        "uniform": _istio([rng.uniform(0, 400) for _ in range(1000)]),
        # Ranks that land exactly on bucket bounds: 20 per bucket up to 100 ms.
        "on_boundaries": _istio([b for b in ISTIO_DURATION_BUCKETS_MS[:7] for _ in range(20)]),
        "all_in_inf": _istio([7_200_000.0] * 10),
        "empty": _istio([]),
        "lowest_only": _istio([0.1] * 50),
        # Non-Istio shapes for PromQL's special cases.
        "lowest_bound_negative": [("-1", 5), ("0", 5), ("1", 8), ("+Inf", 10)],
        "lowest_bound_zero": [("0", 4), ("10", 8), ("+Inf", 10)],
        "non_monotonic": [("1", 5), ("5", 3), ("10", 9), ("50", 7), ("+Inf", 12)],
        "duplicate_bounds": [("1", 5), ("1.0", 2), ("10", 9), ("+Inf", 9)],
        "no_inf": [("1", 5), ("10", 9)],
        "only_inf": [("+Inf", 10)],
        "fractional_counts": [("0.5", 0.25), ("1", 1.75), ("5", 2.5), ("+Inf", 3.125)],
        **{f"random_{i}": _random_histogram(rng) for i in range(25)},
    }


def _random_histogram(rng: random.Random) -> Histogram:
    """Arbitrary bounds (some <= 0) and counts, sometimes decreasing or duplicated."""
    bounds = sorted(
        {round(rng.uniform(-5, 500), rng.choice([0, 1, 3])) for _ in range(rng.randint(1, 8))}
    )
    count = 0.0
    histogram: Histogram = []
    for bound in bounds:
        count += rng.choice([0, 0, rng.randint(1, 50), rng.uniform(0, 20)])
        if rng.random() < 0.1:
            count = max(0.0, count - rng.uniform(0, 10))  # a dip PromQL must repair
        histogram.append((repr(float(bound)), count))
        if rng.random() < 0.1:
            # The same bound spelt differently ("466" beside "466.0"): a separate series.
            other = str(int(bound)) if float(bound).is_integer() else f"{float(bound)!r}0"
            histogram.append((other, 1.0))
    histogram.append(("+Inf", count + rng.choice([0, rng.randint(0, 20)])))
    return histogram


# (name, [(unix seconds, value)]) counters with resets and irregular spacing.
COUNTERS: dict[str, list[tuple[float, float]]] = {
    "steady": [(AT + 15 * i, 100 + 7 * i) for i in range(41)],
    "reset": [(AT + 15 * i, v) for i, v in enumerate([50, 60, 75, 5, 20, 40, 2, 9, 30, 31, 33])],
    "irregular": [(AT + t, v) for t, v in [(3, 0), (11, 4), (40, 10), (47, 2), (95, 7), (130, 19)]],
    "from_zero": [(AT + 30 * i, 3 * i) for i in range(10)],
    "on_range_start": [(AT + 60 * i, 10 * i * i) for i in range(8)],
}
INCREASE_QUERIES = [  # (eval offset from AT, range seconds)
    (60, 60),
    (120, 60),
    (180, 120),
    (300, 300),
    (450, 300),
    (600, 600),
    (140, 97),
]


def _openmetrics() -> str:
    lines = []
    for name, histogram in _distributions().items():
        for le, count in histogram:
            lines.append(f'h_bucket{{dist="{name}",le="{le}"}} {count!r} {AT}')
    for name, samples in COUNTERS.items():
        for t, value in samples:
            lines.append(f'c_total{{series="{name}"}} {float(value)!r} {t}')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusConnect]:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (bash .ci/system-deps installs them)")
    work = Path(tmp_path_factory.mktemp("prometheus"))
    with running_prometheus(work, openmetrics=_openmetrics()) as server:
        yield PrometheusConnect(url=server.url, disable_ssl=True)


def _instant(prom: PrometheusConnect, query: str, at: float = AT) -> float | None:
    result = prom.custom_query(query, params={"time": at})
    if not result:
        return None
    assert len(result) == 1, f"{query} returned {len(result)} series"
    return float(result[0]["value"][1])


def _same(ours: float, theirs: float | None, what: str) -> None:
    assert theirs is not None, f"{what}: Prometheus returned nothing, we computed {ours!r}"
    if math.isnan(theirs) or math.isnan(ours):
        assert math.isnan(theirs) and math.isnan(ours), (
            f"{what}: ours {ours!r}, Prometheus {theirs!r}"
        )
    elif math.isinf(theirs) or math.isinf(ours):
        assert ours == theirs, f"{what}: ours {ours!r}, Prometheus {theirs!r}"
    else:
        assert math.isclose(ours, theirs, rel_tol=REL, abs_tol=1e-12), (
            f"{what}: ours {ours!r}, Prometheus {theirs!r}"
        )


def _as_buckets(histogram: Histogram) -> list[tuple[float, float]]:
    return [(float(le), float(count)) for le, count in histogram]


QUANTILES = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]


@pytest.mark.parametrize("name", list(_distributions()))
def test_histogram_quantile_matches_promql(prometheus: PrometheusConnect, name: str) -> None:
    buckets = _as_buckets(_distributions()[name])
    for q in QUANTILES:
        theirs = _instant(prometheus, f'histogram_quantile({q!r}, h_bucket{{dist="{name}"}})')
        _same(histogram_quantile(q, buckets), theirs, f"{name} q={q}")


@pytest.mark.parametrize("q", ["-0.5", "1.5", "NaN"])
def test_out_of_range_quantiles_match_promql(prometheus: PrometheusConnect, q: str) -> None:
    buckets = _as_buckets(_distributions()["lognormal"])
    theirs = _instant(prometheus, f'histogram_quantile({q}, h_bucket{{dist="lognormal"}})')
    _same(histogram_quantile(float(q), buckets), theirs, f"q={q}")


@pytest.mark.parametrize(
    "name", ["lognormal", "wan_bimodal", "uniform", "on_boundaries", "all_in_inf", "lowest_only"]
)
def test_share_at_bucket_bounds_matches_promql_bucket_ratio(
    prometheus: PrometheusConnect, name: str
) -> None:
    buckets = _as_buckets(_distributions()[name])
    for bound in ISTIO_DURATION_BUCKETS_MS[:-1]:
        share = share_at_or_below(bound, buckets)
        assert share.exact
        theirs = _instant(
            prometheus,
            f'h_bucket{{dist="{name}",le="{_le(bound)}"}} '
            f'/ ignoring(le) h_bucket{{dist="{name}",le="+Inf"}}',
        )
        _same(share.low, theirs, f"{name} share <= {bound:g}")


def test_share_between_bounds_brackets_promql_bucket_ratios(prometheus: PrometheusConnect) -> None:
    buckets = _as_buckets(_distributions()["wan_bimodal"])
    share = share_at_or_below(120.0, buckets)
    assert not share.exact
    for edge, side in ((100, share.low), (250, share.high)):
        theirs = _instant(
            prometheus,
            f'h_bucket{{dist="wan_bimodal",le="{edge}"}} '
            f'/ ignoring(le) h_bucket{{dist="wan_bimodal",le="+Inf"}}',
        )
        _same(side, theirs, f"share at the {edge} ms edge")


@pytest.mark.parametrize("name", list(COUNTERS))
def test_increase_matches_promql(prometheus: PrometheusConnect, name: str) -> None:
    samples = COUNTERS[name]
    compared = 0
    for offset, window in INCREASE_QUERIES:
        at = AT + offset
        ours = prometheus_increase(samples, start=at - window, end=at)
        theirs = _instant(prometheus, f'increase(c_total{{series="{name}"}}[{window}s])', at)
        if ours is None:
            assert theirs is None, f"{name} at +{offset}s [{window}s]: Prometheus says {theirs}"
            continue
        _same(ours, theirs, f"{name} increase at +{offset}s over {window}s")
        compared += 1
    assert compared >= 3, f"{name}: too few windows held two samples"
