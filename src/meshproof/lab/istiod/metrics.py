"""istiod's self-monitoring metrics on 15014, with the names real istiod exports (FACTS.md)."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

__all__ = ["CONVERGENCE_BUCKETS", "IstiodMetrics"]

CONVERGENCE_BUCKETS = (0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0)
"""``pilot_proxy_convergence_time`` buckets, seconds."""
PUSH_TIME_BUCKETS = (0.01, 0.1, 0.5, 1.0, 3.0, 5.0)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "{" + inner + "}"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Histogram:
    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{le="{_fmt(bound)}"}} {running}')
        running += self.counts[-1]
        out += [f'{name}_bucket{{le="+Inf"}} {running}', f"{name}_sum {_fmt(self.sum)}",
                f"{name}_count {running}"]
        return out


class IstiodMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pushes: dict[str, int] = defaultdict(int)
        self.convergence = _Histogram(CONVERGENCE_BUCKETS)
        self.push_time = _Histogram(PUSH_TIME_BUCKETS)
        self.connected = 0
        self.services = 0
        self.csr_count = 0
        self.issued = 0
        self.sign_errors = 0
        self.root_expiry = 0.0
        self.clusters = {"local": 1, "remote": 0}

    def push(self, seconds: float) -> None:
        with self._lock:
            for kind in ("cds", "eds", "lds", "rds"):
                self.pushes[kind] += 1
            self.push_time.observe(seconds)

    def converged(self, seconds: float) -> None:
        with self._lock:
            self.convergence.observe(seconds)

    def exposition(self) -> str:
        with self._lock:
            lines = [
                "# HELP pilot_xds Number of endpoints connected to this pilot using XDS.",
                "# TYPE pilot_xds gauge",
                f'pilot_xds{{version="1.31.0"}} {self.connected}',
                "# HELP pilot_xds_pushes Pilot build and send errors for lds, rds, cds and eds.",
                "# TYPE pilot_xds_pushes counter",
                *[f'pilot_xds_pushes{{type="{k}"}} {v}' for k, v in sorted(self.pushes.items())],
                "# HELP pilot_proxy_convergence_time Delay in seconds between config change "
                "and a proxy receiving all required configuration.",
                "# TYPE pilot_proxy_convergence_time histogram",
                *self.convergence.lines("pilot_proxy_convergence_time"),
                "# HELP pilot_xds_push_time Total time in seconds Pilot takes to push lds, rds, "
                "cds and eds.",
                "# TYPE pilot_xds_push_time histogram",
                *self.push_time.lines("pilot_xds_push_time"),
                "# HELP pilot_services Total services known to pilot.",
                "# TYPE pilot_services gauge",
                f"pilot_services {self.services}",
                "# HELP citadel_server_csr_count The number of CSRs received by Citadel server.",
                "# TYPE citadel_server_csr_count counter",
                f"citadel_server_csr_count {self.csr_count}",
                "# HELP citadel_server_success_cert_issuance_count The number of certificates "
                "issuances that have succeeded.",
                "# TYPE citadel_server_success_cert_issuance_count counter",
                f"citadel_server_success_cert_issuance_count {self.issued}",
                "# HELP citadel_server_csr_sign_err_count The number of errors occurred when "
                "signing the CSR.",
                "# TYPE citadel_server_csr_sign_err_count counter",
                f"citadel_server_csr_sign_err_count {self.sign_errors}",
                "# HELP citadel_server_root_cert_expiry_timestamp The unix timestamp, in "
                "seconds, when Citadel root cert will expire.",
                "# TYPE citadel_server_root_cert_expiry_timestamp gauge",
                f"citadel_server_root_cert_expiry_timestamp {_fmt(self.root_expiry)}",
                "# HELP istiod_managed_clusters Number of clusters managed by istiod",
                "# TYPE istiod_managed_clusters gauge",
                *[f'istiod_managed_clusters{{cluster_type="{k}"}} {v}'
                  for k, v in sorted(self.clusters.items())],
            ]
        return "\n".join(lines) + "\n"
