"""VirtualServices as routes: one virtual host per service port (sidecars) or gateway host.

Shapes (FACTS.md "VirtualService"): header matches exact / prefix / regex, URI
exact / prefix, weighted destinations with subsets, timeout, retries (Istio's
defaults when unset, ``attempts: 0`` disables), fault delay / abort with a
percentage (no percentage: nothing injected).
"""

from __future__ import annotations

from meshproof.lab.istiod.clusters import resolve_host, service_ports
from meshproof.lab.istiod.view import MeshView, Obj, duration_seconds, name_of, namespace_of
from meshproof.lab.mesh.config import (
    Fault,
    HeaderMatch,
    HttpRoute,
    Retries,
    RouteDestination,
    RouteMatch,
    VirtualHost,
)

__all__ = ["gateway_virtual_hosts", "http_routes", "sidecar_virtual_hosts"]


def _matches(match_list: list[Obj]) -> list[RouteMatch]:
    out = []
    for m in match_list:
        headers = [
            HeaderMatch(name=name, exact=cond.get("exact"), prefix=cond.get("prefix"),
                        regex=cond.get("regex"))
            for name, cond in (m.get("headers") or {}).items()
        ]
        uri = m.get("uri") or {}
        out.append(RouteMatch(headers=headers, uri_exact=uri.get("exact"),
                              uri_prefix=uri.get("prefix")))
    return out


def _fault(fault: Obj | None) -> Fault | None:
    if not fault:
        return None
    delay = fault.get("delay") or {}
    abort = fault.get("abort") or {}
    return Fault(
        delay=duration_seconds(delay.get("fixedDelay")) if delay else None,
        delay_percentage=(delay.get("percentage") or {}).get("value") if delay else None,
        abort_status=abort.get("httpStatus") if abort else None,
        abort_percentage=(abort.get("percentage") or {}).get("value") if abort else None,
    )


def _retries(retries: Obj | None) -> Retries:
    if retries is None:
        return Retries()
    defaults = Retries()
    return Retries(
        attempts=int(retries.get("attempts", defaults.attempts)),
        per_try_timeout=duration_seconds(retries.get("perTryTimeout")),
        retry_on=str(retries.get("retryOn", defaults.retry_on)),
    )


def _default_port(view: MeshView, host: str) -> int:
    ports = [sp.port for sp in service_ports(view) if sp.host == host]
    return ports[0] if len(ports) == 1 else 0


def http_routes(view: MeshView, vs: Obj) -> list[HttpRoute]:
    ns = namespace_of(vs)
    routes = []
    for i, http in enumerate((vs.get("spec") or {}).get("http") or []):
        destinations = []
        entries = http.get("route") or []
        for entry in entries:
            dest = entry.get("destination") or {}
            host = resolve_host(str(dest.get("host", "")), ns)
            port = int((dest.get("port") or {}).get("number") or _default_port(view, host))
            weight = int(entry.get("weight", 100 if len(entries) == 1 else 0))
            destinations.append(RouteDestination(host=host, port=port,
                                                 subset=dest.get("subset", ""), weight=weight))
        if not destinations:
            continue
        routes.append(HttpRoute(
            destinations=destinations,
            matches=_matches(http.get("match") or []),
            name=str(http.get("name") or f"{name_of(vs)}.{ns}.{i}"),
            timeout=duration_seconds(http.get("timeout")),
            retries=_retries(http.get("retries")),
            fault=_fault(http.get("fault")),
        ))
    return routes


def _applies_to_mesh(vs: Obj) -> bool:
    gateways = (vs.get("spec") or {}).get("gateways") or []
    return not gateways or "mesh" in gateways


def sidecar_virtual_hosts(view: MeshView) -> list[VirtualHost]:
    """A virtual host for each service port; VirtualServices bound to ``mesh`` add routes."""
    by_host: dict[str, list[HttpRoute]] = {}
    for vs in sorted(view.virtual_services, key=lambda v: (
            (v.get("metadata") or {}).get("creationTimestamp", ""), name_of(v))):
        if not _applies_to_mesh(vs):
            continue
        routes = http_routes(view, vs)
        for host in (vs.get("spec") or {}).get("hosts") or []:
            by_host.setdefault(resolve_host(str(host), namespace_of(vs)), []).extend(routes)
    hosts: list[VirtualHost] = []
    for sp in service_ports(view):
        routes = [r for r in by_host.get(sp.host, [])
                  if all(d.port in (sp.port, 0) for d in r.destinations)
                  or len({p.port for p in service_ports(view) if p.host == sp.host}) == 1]
        hosts.append(VirtualHost(domains=[sp.host], port=sp.port, routes=routes))
    return hosts


def gateway_virtual_hosts(view: MeshView, gateway_refs: set[str], port: int) -> list[VirtualHost]:
    """Virtual hosts of the VirtualServices bound to one of ``gateway_refs`` (``ns/name``)."""
    hosts: list[VirtualHost] = []
    for vs in view.virtual_services:
        ns = namespace_of(vs)
        bound = {g if "/" in g else f"{ns}/{g}" for g in (vs.get("spec") or {}).get("gateways") or []}
        if not bound & gateway_refs:
            continue
        hosts.append(VirtualHost(domains=[str(h) for h in (vs.get("spec") or {}).get("hosts") or []],
                                 port=port, routes=http_routes(view, vs)))
    return hosts


