"""Outlier detection as Envoy does it for Istio's ``outlierDetection``.

A host is ejected after ``consecutive_5xx_errors`` consecutive 5xx (locally
originated failures — connect failure, reset, timeout — count as 5xx, since
Istio leaves ``split_external_local_origin_errors`` off), or after
``consecutive_gateway_errors`` consecutive 502/503/504 when that is set. An
ejection is enforced only while the ejected share stays within
``max_ejection_percent`` (Envoy ``outlier_detection_impl.cc``: the share after
this ejection must be ≤ the maximum), else ``ejections_overflow`` counts it;
with the default 10 % and two hosts nothing is ejected. A host stays out for
``base_ejection_time × number of its ejections``, and returns at the next tick
of the detector's ``interval`` timer after that.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from meshproof.lab.mesh.config import OutlierDetection
from meshproof.lab.mesh.stats import EnvoyStats

__all__ = ["HostHealth", "OutlierDetector", "is_gateway_error"]


def is_gateway_error(status: int | None) -> bool:
    """502/503/504, or a locally originated failure (``None``)."""
    return status is None or status in (502, 503, 504)


@dataclass(slots=True)
class HostHealth:
    """The detector's view of one host."""

    consecutive_5xx: int = 0
    consecutive_gateway: int = 0
    ejected_at: float | None = None
    ejections: int = 0

    @property
    def ejected(self) -> bool:
        return self.ejected_at is not None


class OutlierDetector:
    """Tracks one cluster's hosts; ``settings`` None means no outlier detection."""

    def __init__(
        self,
        cluster: str,
        settings: OutlierDetection | None,
        stats: EnvoyStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.settings = settings
        self._stats = stats
        self._clock = clock
        self._epoch = clock()
        self._touch()

    def _touch(self) -> None:
        if self.settings is None:
            return
        for stat in (
            "ejections_enforced_total",
            "ejections_overflow",
            "ejections_enforced_consecutive_5xx",
            "ejections_detected_consecutive_5xx",
            "ejections_enforced_consecutive_gateway_failure",
            "ejections_detected_consecutive_gateway_failure",
        ):
            self._stats.touch_counter("cluster", self.cluster, f"outlier_detection.{stat}")

    def update(self, settings: OutlierDetection | None) -> None:
        self.settings = settings
        self._touch()

    def _returns_at(self, host: HostHealth) -> float:
        """When an ejected host comes back: the first interval tick after its ejection time
        is over (Envoy checks ejected hosts on its ``interval`` timer)."""
        assert self.settings is not None and host.ejected_at is not None
        due = host.ejected_at + self.settings.base_ejection_time * host.ejections
        interval = self.settings.interval
        if interval <= 0:
            return due
        return self._epoch + math.ceil((due - self._epoch) / interval) * interval

    def refresh(self, hosts: Sequence[HostHealth]) -> None:
        """Return hosts whose ejection time is over; update the ejections_active gauge."""
        now = self._clock()
        active = 0
        for h in hosts:
            if h.ejected_at is None:
                continue
            if self.settings is None or now >= self._returns_at(h):
                h.ejected_at = None
                h.consecutive_5xx = h.consecutive_gateway = 0
            else:
                active += 1
        if self.settings is not None:
            self._stats.set_gauge(
                "cluster", self.cluster, "outlier_detection.ejections_active", active
            )

    def record(self, host: HostHealth, status: int | None, hosts: Sequence[HostHealth]) -> None:
        """A finished attempt on ``host``: HTTP ``status``, or None for a local-origin failure."""
        s = self.settings
        if s is None:
            return
        failed_5xx = status is None or status >= 500
        if not failed_5xx:
            host.consecutive_5xx = host.consecutive_gateway = 0
            return
        host.consecutive_5xx += 1
        host.consecutive_gateway = host.consecutive_gateway + 1 if is_gateway_error(status) else 0
        if host.ejected:
            return
        if s.consecutive_5xx_errors > 0 and host.consecutive_5xx >= s.consecutive_5xx_errors:
            self._detected(host, hosts, "consecutive_5xx")
        elif (
            s.consecutive_gateway_errors > 0
            and host.consecutive_gateway >= s.consecutive_gateway_errors
        ):
            self._detected(host, hosts, "consecutive_gateway_failure")

    def _detected(self, host: HostHealth, hosts: Sequence[HostHealth], kind: str) -> None:
        assert self.settings is not None
        prefix = "outlier_detection."
        self._stats.cluster_inc(self.cluster, f"{prefix}ejections_detected_{kind}")
        host.consecutive_5xx = host.consecutive_gateway = 0
        self.refresh(hosts)
        active = sum(1 for h in hosts if h.ejected)
        share = 100.0 * (active + 1) / max(1, len(hosts))
        if share > min(100, self.settings.max_ejection_percent):
            self._stats.cluster_inc(self.cluster, f"{prefix}ejections_overflow")
            return
        host.ejected_at = self._clock()
        host.ejections += 1
        self._stats.cluster_inc(self.cluster, f"{prefix}ejections_enforced_total")
        self._stats.cluster_inc(self.cluster, f"{prefix}ejections_enforced_{kind}")
        self.refresh(hosts)
