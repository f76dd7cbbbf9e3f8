"""Per-guarantee results pushed to a Prometheus Pushgateway, for nightly trends.

``meshproof run --pushgateway URL`` pushes, after the reports are written, one
group per run kind (job ``meshproof``, grouping key ``profile`` and ``target``),
replacing the previous run's numbers of that group:

==========================================  ==========================================
``meshproof_guarantee_verdict``             1 for the verdict a guarantee got, 0 for the
                                            others (labels ``guarantee``, ``verdict``,
                                            ``tier``, ``profile``, ``target``)
``meshproof_guarantee_clusters``            clusters per verdict of a guarantee
``meshproof_run_guarantees``                guarantees per verdict
``meshproof_run_exit_code``                 the run's exit code
``meshproof_run_finished_timestamp_seconds``  when the run finished
==========================================  ==========================================

A push that fails is a warning, never a failed run: the reports are the record.
"""

from __future__ import annotations

import datetime as dt
import urllib.error
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

from meshproof.report.model import Report
from meshproof.sli.verdict import Verdict
from meshproof.urls import shown_url

__all__ = ["JOB", "VERDICTS", "build_registry", "push_results"]

JOB = "meshproof"
VERDICTS = (Verdict.HELD, Verdict.VIOLATED, Verdict.NOT_MEASURABLE)


def build_registry(report: Report) -> CollectorRegistry:
    """The gauges of one run."""
    run = report.run
    registry = CollectorRegistry()
    common = {"profile": run.profile, "target": run.target}
    verdict = Gauge(
        "meshproof_guarantee_verdict",
        "1 for the verdict the guarantee got in this run, 0 for the other verdicts",
        ["guarantee", "verdict", "tier", "profile", "target"],
        registry=registry,
    )
    clusters = Gauge(
        "meshproof_guarantee_clusters",
        "Clusters (or the mesh as a whole) in which the guarantee got this verdict",
        ["guarantee", "verdict", "profile", "target"],
        registry=registry,
    )
    counts = Gauge(
        "meshproof_run_guarantees",
        "Guarantees of the profile per verdict",
        ["verdict", "profile", "target"],
        registry=registry,
    )
    for g in report.guarantees:
        for v in VERDICTS:
            verdict.labels(guarantee=g.id, verdict=v.value, tier=g.tier, **common).set(
                1 if g.verdict is v else 0
            )
            clusters.labels(guarantee=g.id, verdict=v.value, **common).set(
                sum(c.verdict is v for c in g.clusters)
            )
    for v in VERDICTS:
        counts.labels(verdict=v.value, **common).set(
            sum(g.verdict is v for g in report.guarantees)
        )
    exit_code = Gauge(
        "meshproof_run_exit_code", "The run's exit code", ["profile", "target"], registry=registry
    )
    exit_code.labels(**common).set(run.exit_code)
    finished = Gauge(
        "meshproof_run_finished_timestamp_seconds",
        "When the run finished (unix seconds)",
        ["profile", "target"],
        registry=registry,
    )
    finished.labels(**common).set(_unix(run.finished))
    return registry


def _unix(text: str) -> float:
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return dt.datetime.now(dt.UTC).timestamp()


def _handler(url: str) -> Callable[..., Callable[[], None]]:
    """Basic auth when the URL carries a user, the default handler otherwise."""
    parts = urlsplit(url)
    if parts.username is None:
        return default_handler
    user, password = unquote(parts.username), unquote(parts.password or "")

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]],
        data: bytes,
    ) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, user, password)

    return handler


def push_results(report: Report, url: str, *, timeout: float) -> str | None:
    """Push the run's results; None when it worked, else a one-line warning (no secret)."""
    parts = urlsplit(url)
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    gateway = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    grouping: dict[str, Any] = {"profile": report.run.profile, "target": report.run.target}
    try:
        push_to_gateway(
            gateway,
            job=JOB,
            registry=build_registry(report),
            grouping_key=grouping,
            timeout=timeout,
            handler=_handler(url),
        )
    except urllib.error.HTTPError as exc:
        return (
            f"the Pushgateway at {shown_url(url)} refused the results: "
            f"HTTP {exc.code} {exc.reason}"
        )
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"could not push the results to the Pushgateway at {shown_url(url)}: {reason}"
    return None
