"""Istio's standard metrics as a proxy emits them (FACTS.md "Istio metrics").

HTTP: ``istio_requests_total``, ``istio_request_duration_milliseconds``,
``istio_request_bytes``, ``istio_response_bytes``; TCP:
``istio_tcp_sent_bytes_total``, ``istio_tcp_received_bytes_total``,
``istio_tcp_connections_opened_total``, ``istio_tcp_connections_closed_total``.
Labels are emitted in Istio's order; TCP series carry no ``response_code``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from meshproof.lab.mesh.stats import prom_escape

__all__ = [
    "BYTES_BUCKETS",
    "DURATION_BUCKETS_MS",
    "IstioMetrics",
    "TrafficLabels",
]

DURATION_BUCKETS_MS = (
    0.5,
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    300000,
    600000,
    1800000,
    3600000,
)
"""istio_request_duration_milliseconds bucket bounds (+Inf implied)."""

BYTES_BUCKETS = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000)
"""istio_request_bytes / istio_response_bytes bounds (Istio's exponential 1..1e7)."""


@dataclass(frozen=True, slots=True)
class TrafficLabels:
    """The label set of one series, fields in Istio's emission order."""

    reporter: str = "unknown"
    source_workload: str = "unknown"
    source_workload_namespace: str = "unknown"
    source_principal: str = "unknown"
    source_app: str = "unknown"
    source_version: str = "unknown"
    source_canonical_service: str = "unknown"
    source_canonical_revision: str = "latest"
    source_cluster: str = "unknown"
    destination_workload: str = "unknown"
    destination_workload_namespace: str = "unknown"
    destination_principal: str = "unknown"
    destination_app: str = "unknown"
    destination_version: str = "unknown"
    destination_service: str = "unknown"
    destination_service_name: str = "unknown"
    destination_service_namespace: str = "unknown"
    destination_canonical_service: str = "unknown"
    destination_canonical_revision: str = "latest"
    destination_cluster: str = "unknown"
    request_protocol: str = "http"
    response_flags: str = "-"
    connection_security_policy: str = "unknown"
    response_code: str = "200"
    grpc_response_status: str = ""

    def render(self, *, tcp: bool = False) -> str:
        parts = []
        for f in fields(self):
            if tcp and f.name == "response_code":
                continue
            parts.append(f'{f.name}="{prom_escape(getattr(self, f.name))}"')
        return ",".join(parts)


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1


def _fmt_bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else repr(float(bound))


def _fmt_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class IstioMetrics:
    """All series one proxy has emitted since it started."""

    def __init__(self) -> None:
        self._requests: dict[TrafficLabels, int] = {}
        self._hist: dict[str, dict[TrafficLabels, _Histogram]] = {
            "istio_request_duration_milliseconds": {},
            "istio_request_bytes": {},
            "istio_response_bytes": {},
        }
        self._tcp: dict[str, dict[TrafficLabels, int]] = {
            "istio_tcp_connections_opened_total": {},
            "istio_tcp_connections_closed_total": {},
            "istio_tcp_sent_bytes_total": {},
            "istio_tcp_received_bytes_total": {},
        }

    def record_request(
        self, labels: TrafficLabels, *, duration_ms: float, request_bytes: int, response_bytes: int
    ) -> None:
        """One finished HTTP request, as seen by ``labels.reporter``."""
        self._requests[labels] = self._requests.get(labels, 0) + 1
        for name, bounds, value in (
            ("istio_request_duration_milliseconds", DURATION_BUCKETS_MS, duration_ms),
            ("istio_request_bytes", BYTES_BUCKETS, float(request_bytes)),
            ("istio_response_bytes", BYTES_BUCKETS, float(response_bytes)),
        ):
            table = self._hist[name]
            hist = table.get(labels)
            if hist is None:
                hist = table[labels] = _Histogram(bounds)
            hist.observe(value)

    def tcp_add(self, name: str, labels: TrafficLabels, n: int = 1) -> None:
        """Add ``n`` to a TCP counter (``istio_tcp_…_total``)."""
        table = self._tcp[name]
        table[labels] = table.get(labels, 0) + n

    def requests_total(self, **match: str) -> int:
        """Sum of ``istio_requests_total`` over series whose labels equal ``match``."""
        return sum(
            v
            for k, v in self._requests.items()
            if all(getattr(k, name) == value for name, value in match.items())
        )

    def render_prometheus(self) -> str:
        out: list[str] = []
        if self._requests:
            out.append("# TYPE istio_requests_total counter")
            out += [f"istio_requests_total{{{k.render()}}} {v}" for k, v in self._requests.items()]
        for name, table in self._hist.items():
            if not table:
                continue
            out.append(f"# TYPE {name} histogram")
            for labels, hist in table.items():
                base = labels.render()
                for bound, count in zip(hist.bounds, hist.counts, strict=True):
                    out.append(f'{name}_bucket{{{base},le="{_fmt_bound(bound)}"}} {count}')
                out.append(f'{name}_bucket{{{base},le="+Inf"}} {hist.count}')
                out.append(f"{name}_sum{{{base}}} {_fmt_value(hist.sum)}")
                out.append(f"{name}_count{{{base}}} {hist.count}")
        for name, counters in self._tcp.items():
            if not counters:
                continue
            out.append(f"# TYPE {name} counter")
            out += [f"{name}{{{k.render(tcp=True)}}} {v}" for k, v in counters.items()]
        return "\n".join(out) + ("\n" if out else "")
