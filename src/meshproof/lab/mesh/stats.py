"""Envoy-shaped stats: names, the proxyStatsMatcher filter, ``/stats`` text and Prometheus form.

A stat lives in a scope: a cluster (``cluster.<name>;.<stat>``, with the ``;``
Istio ≥ 1.23 puts after the cluster name), a listener
(``listener.0.0.0.0_15006.<stat>``), an HTTP connection manager
(``http.<prefix>.<stat>``) or none (``server.state``).

Istio keeps only a few Envoy stats unless ``proxyStatsMatcher`` includes more;
the always-kept prefixes are those of Istio's bootstrap ``statsMatcher``
inclusion list (istio/istio ``tools/packaging/common/envoy_bootstrap.json``):
``reporter=``, ``cluster_manager``, ``listener_manager``, ``server``,
``cluster.xds-grpc``, ``wasm``, ``component``, plus RBAC's ``rbac.allowed`` /
``rbac.denied``. Everything else is filtered out when rendered, so it simply does
not exist, as in a real proxy.

Prometheus form follows Envoy's default tag extraction with Istio's tag names:
prefix ``envoy_``, every non-alphanumeric character to ``_``, the cluster in
``cluster_name``, the listener in ``listener_address``, and a trailing response
code / class lifted into ``response_code`` / ``response_code_class``:
``cluster.X;.upstream_rq_503`` → ``envoy_cluster_upstream_rq{response_code="503",cluster_name="X"}``,
``cluster.X;.upstream_rq_5xx`` → ``envoy_cluster_upstream_rq{response_code_class="5xx",cluster_name="X"}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from meshproof.lab.mesh.config import StatsMatcher

__all__ = ["DEFAULT_INCLUDED_PREFIXES", "EnvoyStats", "StatKey", "prom_escape"]

DEFAULT_INCLUDED_PREFIXES = (
    "reporter=",
    "cluster_manager",
    "listener_manager",
    "server",
    "cluster.xds-grpc",
    "wasm",
    "component",
)
_DEFAULT_SUFFIXES = ("rbac.allowed", "rbac.denied", "shadow_allowed", "shadow_denied")
_CODE = re.compile(r"^(.*_rq)_(\d{3})$")
_CLASS = re.compile(r"^(.*_rq)_(\dxx)$")
_SANITIZE = re.compile(r"[^a-zA-Z0-9_]")


def prom_escape(value: str) -> str:
    """A label value escaped for the Prometheus text format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass(frozen=True, slots=True)
class StatKey:
    """One stat: its scope kind, the scope's name, and the stat's own dotted name."""

    scope: str
    """``cluster`` | ``listener`` | ``http`` | ``""``."""
    scope_name: str
    stat: str

    @property
    def text_name(self) -> str:
        if self.scope == "cluster":
            return f"cluster.{self.scope_name};.{self.stat}"
        if self.scope:
            return f"{self.scope}.{self.scope_name}.{self.stat}"
        return self.stat

    def prometheus(self) -> tuple[str, list[tuple[str, str]]]:
        """Metric name and labels in Envoy's Prometheus form."""
        stat = self.stat
        labels: list[tuple[str, str]] = []
        if (m := _CODE.match(stat)) is not None:
            stat, labels = m.group(1), [("response_code", m.group(2))]
        elif (m := _CLASS.match(stat)) is not None:
            stat, labels = m.group(1), [("response_code_class", m.group(2))]
        if self.scope == "cluster":
            name = f"cluster.{stat}"
            labels.append(("cluster_name", self.scope_name))
        elif self.scope == "listener":
            name = f"listener.{stat}"
            labels.append(("listener_address", self.scope_name))
        elif self.scope:
            name = f"{self.scope}.{self.scope_name}.{stat}"
        else:
            name = stat
        return "envoy_" + _SANITIZE.sub("_", name), labels


class EnvoyStats:
    """Counters and gauges of one proxy, filtered by its stats matcher when read."""

    def __init__(self, matcher: StatsMatcher | None = None) -> None:
        self._counters: dict[StatKey, int] = {}
        self._gauges: dict[StatKey, int] = {}
        self._matcher = StatsMatcher()
        self._regexps: list[re.Pattern[str]] = []
        self.set_matcher(matcher or StatsMatcher())

    def set_matcher(self, matcher: StatsMatcher) -> None:
        self._matcher = matcher
        self._regexps = [re.compile(r) for r in matcher.inclusion_regexps]

    def included(self, key: StatKey) -> bool:
        """Whether the proxyStatsMatcher (or Istio's default list) keeps this stat."""
        name = key.text_name
        if name.startswith(DEFAULT_INCLUDED_PREFIXES) or name.endswith(_DEFAULT_SUFFIXES):
            return True
        m = self._matcher
        return (
            any(name.startswith(p) for p in m.inclusion_prefixes)
            or any(name.endswith(s) for s in m.inclusion_suffixes)
            or any(r.fullmatch(name) for r in self._regexps)
        )

    # -- writing -------------------------------------------------------------------------------

    def inc(self, scope: str, scope_name: str, stat: str, n: int = 1) -> None:
        key = StatKey(scope, scope_name, stat)
        self._counters[key] = self._counters.get(key, 0) + n

    def cluster_inc(self, cluster: str, stat: str, n: int = 1) -> None:
        self.inc("cluster", cluster, stat, n)

    def set_gauge(self, scope: str, scope_name: str, stat: str, value: int) -> None:
        self._gauges[StatKey(scope, scope_name, stat)] = value

    def touch_counter(self, scope: str, scope_name: str, stat: str) -> None:
        """Make a counter exist at 0 (Envoy creates a cluster's stats with the cluster)."""
        self._counters.setdefault(StatKey(scope, scope_name, stat), 0)

    def drop_scope(self, scope: str, scope_name: str) -> None:
        """Forget a removed cluster's stats."""
        for table in (self._counters, self._gauges):
            for key in [k for k in table if k.scope == scope and k.scope_name == scope_name]:
                del table[key]

    # -- reading -------------------------------------------------------------------------------

    def value(self, scope: str, scope_name: str, stat: str) -> int:
        """The raw value, whether or not the matcher shows it (for the proxy's own decisions)."""
        key = StatKey(scope, scope_name, stat)
        return self._counters.get(key, self._gauges.get(key, 0))

    def items(self) -> Iterable[tuple[StatKey, int, str]]:
        """Visible stats as (key, value, "counter"|"gauge"), sorted by text name."""
        rows = [(k, v, "counter") for k, v in self._counters.items() if self.included(k)]
        rows += [(k, v, "gauge") for k, v in self._gauges.items() if self.included(k)]
        return sorted(rows, key=lambda r: r[0].text_name)

    def render_text(self, name_filter: str | None = None) -> str:
        """``/stats``: ``name: value`` lines."""
        pattern = re.compile(name_filter) if name_filter else None
        lines = [
            f"{k.text_name}: {v}"
            for k, v, _ in self.items()
            if pattern is None or pattern.search(k.text_name)
        ]
        return "\n".join(lines) + ("\n" if lines else "")

    def render_json(self) -> dict[str, list[dict[str, object]]]:
        """``/stats?format=json``."""
        return {"stats": [{"name": k.text_name, "value": v} for k, v, _ in self.items()]}

    def render_prometheus(self) -> str:
        """``/stats/prometheus`` body for the Envoy stats (one TYPE line per metric family)."""
        families: dict[str, tuple[str, list[str]]] = {}
        for key, value, kind in self.items():
            name, labels = key.prometheus()
            label_text = ",".join(f'{k}="{prom_escape(v)}"' for k, v in labels)
            sample = f"{name}{{{label_text}}} {value}" if labels else f"{name} {value}"
            fam = families.setdefault(name, (kind, []))
            fam[1].append(sample)
        out: list[str] = []
        for name in sorted(families):
            kind, samples = families[name]
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)
        return "\n".join(out) + ("\n" if out else "")
