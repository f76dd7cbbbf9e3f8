"""The controller's Prometheus metrics on :9402 ``/metrics``, with cert-manager's names.

Names, help texts and labels follow cert-manager/cert-manager ``pkg/metrics``
(``certificates.go``, ``metrics.go``): per Certificate the expiry and renewal
timestamps (0 until known) and the Ready condition as three series
(``condition="True|False|Unknown"``, exactly one 1); labels name, namespace,
issuer_name, issuer_kind, issuer_group, printed in sorted order as client_golang does.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from meshproof.lab.certmanager.durations import parse_time

__all__ = ["ControllerMetrics"]

Obj = dict[str, Any]


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _labels(pairs: dict[str, str]) -> str:
    escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               for k, v in pairs.items()}
    return "{" + ",".join(f'{k}="{escaped[k]}"' for k in sorted(escaped)) + "}"


def _timestamp(status: Obj, key: str) -> float:
    value = status.get(key)
    return parse_time(value).timestamp() if value else 0.0


class ControllerMetrics:
    """Renders the exposition from the controller's Certificate cache at scrape time."""

    def __init__(self, certificates: Callable[[], Iterable[Obj]]) -> None:
        self._certificates = certificates
        self._lock = threading.Lock()
        self._syncs: Counter[str] = Counter()

    def synced(self, controller: str) -> None:
        """Count one sync of ``controller`` (``certmanager_controller_sync_call_count``)."""
        with self._lock:
            self._syncs[controller] += 1

    def exposition(self) -> str:
        expiry, renewal, ready = [], [], []
        for cert in sorted(self._certificates(), key=lambda c: (
                c["metadata"].get("namespace", ""), c["metadata"]["name"])):
            ref = (cert.get("spec") or {}).get("issuerRef") or {}
            status = cert.get("status") or {}
            base = {"name": cert["metadata"]["name"],
                    "namespace": cert["metadata"].get("namespace", ""),
                    "issuer_name": str(ref.get("name", "")),
                    "issuer_kind": str(ref.get("kind", "")),
                    "issuer_group": str(ref.get("group", ""))}
            expiry.append(f"certmanager_certificate_expiration_timestamp_seconds"
                          f"{_labels(base)} {_fmt(_timestamp(status, 'notAfter'))}")
            renewal.append(f"certmanager_certificate_renewal_timestamp_seconds"
                           f"{_labels(base)} {_fmt(_timestamp(status, 'renewalTime'))}")
            current = next((c.get("status") for c in status.get("conditions") or []
                            if c.get("type") == "Ready"), "Unknown")
            for condition in ("False", "True", "Unknown"):
                value = 1 if condition == current else 0
                ready.append(f"certmanager_certificate_ready_status"
                             f"{_labels({**base, 'condition': condition})} {value}")
        now = time.time()
        with self._lock:
            syncs = [f'certmanager_controller_sync_call_count{{controller="{name}"}} {count}'
                     for name, count in sorted(self._syncs.items())]
        lines = [
            ("# HELP certmanager_certificate_expiration_timestamp_seconds The date after which "
             "the certificate expires. Expressed as a Unix Epoch Time."),
            "# TYPE certmanager_certificate_expiration_timestamp_seconds gauge", *expiry,
            ("# HELP certmanager_certificate_renewal_timestamp_seconds The number of seconds "
             "before expiration time the certificate should renew."),
            "# TYPE certmanager_certificate_renewal_timestamp_seconds gauge", *renewal,
            "# HELP certmanager_certificate_ready_status The ready status of the certificate.",
            "# TYPE certmanager_certificate_ready_status gauge", *ready,
            ("# HELP certmanager_clock_time_seconds DEPRECATED: use clock_time_seconds_gauge "
            "instead. The clock time given in seconds (from 1970/01/01 UTC)."),
            "# TYPE certmanager_clock_time_seconds counter",
            f"certmanager_clock_time_seconds {_fmt(float(int(now)))}",
            ("# HELP certmanager_clock_time_seconds_gauge The clock time given in seconds "
            "(from 1970/01/01 UTC)."),
            "# TYPE certmanager_clock_time_seconds_gauge gauge",
            f"certmanager_clock_time_seconds_gauge {_fmt(now)}",
            ("# HELP certmanager_controller_sync_call_count The number of sync() calls made "
            "by a controller."),
            "# TYPE certmanager_controller_sync_call_count counter", *syncs,
        ]
        return "\n".join(lines) + "\n"
