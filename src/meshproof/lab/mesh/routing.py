"""Routing: from a request's host to a virtual host, a route, a destination and its faults.

Sidecars resolve Kubernetes short names the way a pod's resolv.conf search
path does (``name`` → ``name.<own ns>.svc.cluster.local``, ``name.ns``,
``name.ns.svc``); gateways match Envoy virtual-host domains (exact,
``*.suffix``, ``*``). Weighted destinations and fault percentages are drawn at
random per request, as Envoy does.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from meshproof.lab.mesh.config import Fault, HttpRoute, RouteDestination, VirtualHost
from meshproof.lab.mesh.http1 import Request

__all__ = [
    "Resolved",
    "RouteTable",
    "domain_matches",
    "fault_abort",
    "fault_delay",
    "fqdn_candidates",
    "match_route",
    "pick_destination",
    "split_authority",
]

_SUFFIX = ".svc.cluster.local"


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` → (lower-case host, port)."""
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host.lower().rstrip("."), int(port)
    return authority.lower().rstrip("."), default_port


def fqdn_candidates(host: str, namespace: str) -> list[str]:
    """The service FQDNs a name may mean from a pod in ``namespace``."""
    parts = host.split(".")
    if host.endswith(_SUFFIX):
        return [host]
    if len(parts) == 1:
        return [f"{host}.{namespace}{_SUFFIX}"]
    if len(parts) == 2:
        return [f"{host}{_SUFFIX}", host]
    if len(parts) == 3 and parts[2] == "svc":
        return [f"{host}.cluster.local", host]
    return [host]


@dataclass(frozen=True, slots=True)
class Resolved:
    vhost: VirtualHost
    host: str
    """The service FQDN (sidecar) or request host (gateway)."""
    port: int


def domain_matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower()
    if pattern == "*" or pattern == host:
        return True
    return pattern.startswith("*") and host.endswith(pattern[1:])


class RouteTable:
    """The virtual hosts of one proxy."""

    def __init__(self, vhosts: list[VirtualHost]) -> None:
        self.vhosts = vhosts
        self._by_service: dict[tuple[str, int], VirtualHost] = {}
        for vh in vhosts:
            for domain in vh.domains:
                self._by_service.setdefault((domain.lower(), vh.port), vh)

    def resolve_service(self, authority: str, namespace: str) -> Resolved | None:
        """Sidecar lookup: the service FQDN and port the request is for."""
        host, port = split_authority(authority, 80)
        for fqdn in fqdn_candidates(host, namespace):
            vh = self._by_service.get((fqdn, port))
            if vh is not None:
                return Resolved(vh, vh.domains[0], port)
        return None

    def resolve_gateway(self, authority: str, port: int) -> Resolved | None:
        """Gateway lookup by Host: exact domains before wildcards, as Envoy orders them."""
        host, _ = split_authority(authority, port)
        candidates = [vh for vh in self.vhosts if vh.port in (port, 0)]
        for exact in (True, False):
            for vh in candidates:
                for d in vh.domains:
                    if (d.lower() == host) if exact else domain_matches(d, host):
                        return Resolved(vh, host, port)
        return None


def _header_matches(
    request: Request, name: str, exact: str | None, prefix: str | None, regex: str | None
) -> bool:
    value = request.headers.get(name)
    if value is None:
        return False
    if exact is not None and value != exact:
        return False
    if prefix is not None and not value.startswith(prefix):
        return False
    return regex is None or re.fullmatch(regex, value) is not None


def match_route(vhost: VirtualHost, request: Request) -> HttpRoute | None:
    """The first route whose matches accept the request (a vhost without routes → default)."""
    if not vhost.routes:
        return HttpRoute(destinations=[RouteDestination(host=vhost.domains[0], port=vhost.port)])
    path = request.path.split("?", 1)[0]
    for route in vhost.routes:
        if not route.matches:
            return route
        for m in route.matches:
            if m.uri_exact is not None and path != m.uri_exact:
                continue
            if m.uri_prefix is not None and not path.startswith(m.uri_prefix):
                continue
            if all(_header_matches(request, h.name, h.exact, h.prefix, h.regex) for h in m.headers):
                return route
    return None


def pick_destination(route: HttpRoute) -> RouteDestination:
    """A weighted random choice among the route's destinations."""
    dests = route.destinations
    if len(dests) == 1:
        return dests[0]
    total = sum(max(0, d.weight) for d in dests)
    roll = random.uniform(0, total)
    for d in dests:
        if roll < d.weight:
            return d
        roll -= d.weight
    return dests[-1]


def _hit(percentage: float | None) -> bool:
    return percentage is not None and random.uniform(0, 100) < percentage


def fault_delay(fault: Fault | None) -> float | None:
    """Seconds to delay this request, or None."""
    if fault is None or fault.delay is None or not _hit(fault.delay_percentage):
        return None
    return fault.delay


def fault_abort(fault: Fault | None) -> int | None:
    """The status to abort this request with, or None."""
    if fault is None or fault.abort_status is None or not _hit(fault.abort_percentage):
        return None
    return fault.abort_status
