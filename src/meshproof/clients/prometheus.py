"""PromQL against one cluster's Prometheus, through ``prometheus-api-client``.

Bearer tokens are read from a file at call time and never kept in messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from meshproof.errors import ConfigError, MeshproofError, TargetUnreachable

__all__ = ["Sample", "Series", "PromQL", "connect_prometheus"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True, slots=True)
class Series:
    """One element of a range vector: (timestamp, value) pairs in time order."""

    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)


class PromQL:
    """Instant and range queries against one Prometheus, with errors as the project's own."""

    def __init__(self, cluster: str, url: str, client: PrometheusConnect, timeout: float) -> None:
        self.cluster = cluster
        self.url = url
        self._client = client
        self._timeout = timeout

    def instant(self, query: str, *, at: datetime | None = None) -> list[Sample]:
        params = {"time": f"{at.timestamp():.3f}"} if at else None
        raw = self._call(query, lambda: self._client.custom_query(query, params=params))
        return [
            Sample(dict(item["metric"]), _float(item["value"][1]), float(item["value"][0]))
            for item in raw
        ]

    def scalar(self, query: str, *, at: datetime | None = None) -> float | None:
        """The value of a query expected to return at most one sample (None when empty)."""
        samples = self.instant(query, at=at)
        if len(samples) > 1:
            raise MeshproofError(
                f"Prometheus of {self.cluster}: {query!r} returned {len(samples)} series, expected one"
            )
        return samples[0].value if samples else None

    def range(self, query: str, *, start: datetime, end: datetime, step_s: float) -> list[Series]:
        raw = self._call(
            query,
            lambda: self._client.custom_query_range(
                query, start_time=start, end_time=end, step=f"{step_s:g}s"
            ),
        )
        return [
            Series(dict(item["metric"]), [(float(t), _float(v)) for t, v in item["values"]])
            for item in raw
        ]

    def _call(self, query: str, call: object) -> list[dict[str, Any]]:
        try:
            result = call()  # type: ignore[operator]
        except requests.RequestException as exc:
            raise TargetUnreachable(
                f"Prometheus of {self.cluster} at {self.url} unreachable for {query!r}: "
                f"{type(exc).__name__}"
            ) from exc
        except PrometheusApiClientException as exc:
            raise MeshproofError(
                f"Prometheus of {self.cluster} at {self.url} refused {query!r}: {str(exc)[:300]}"
            ) from exc
        return list(result)


def _float(text: str) -> float:
    return math.nan if text == "NaN" else float(text)


def connect_prometheus(
    cluster: str,
    url: str,
    *,
    timeout: float,
    bearer_token_file: Path | None = None,
    ca_file: Path | None = None,
    insecure_skip_verify: bool = False,
) -> PromQL:
    """A ``PromQL`` for the Prometheus at ``url`` with the target's auth and TLS settings."""
    headers: dict[str, str] = {}
    if bearer_token_file is not None:
        try:
            token = bearer_token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cluster {cluster}: cannot read prometheus.bearer_token_file "
                f"{bearer_token_file}: {exc.strerror}"
            ) from exc
        headers["Authorization"] = f"Bearer {token}"
    session = requests.Session()
    session.verify = str(ca_file) if ca_file else not insecure_skip_verify
    client = PrometheusConnect(
        url=url.rstrip("/"),
        headers=headers or None,
        disable_ssl=insecure_skip_verify,
        session=session,
        timeout=int(math.ceil(timeout)),
    )
    return PromQL(cluster, url, client, timeout)
