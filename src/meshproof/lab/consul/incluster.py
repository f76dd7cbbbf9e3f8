"""How the lab's Consul programs reach their cluster's Kubernetes API and resolve cluster names.

In-cluster, as every pod does: the service-account token and CA under
``/var/run/secrets/kubernetes.io/serviceaccount`` (through ``ctx.path``, so a test
points them at its own files) and ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``.
The lab has no cluster DNS, so the names the chart uses
(``consul-server-0.consul-server.consul.svc``, ``consul-server.consul.svc``) are
resolved through the API: a pod's ``status.podIP``, a Service's endpoint addresses.
A name that is already an IP address is used as it is.
"""

from __future__ import annotations

import ipaddress

import aiohttp

from meshproof.lab.images.context import ContainerContext
from meshproof.lab.istiod.kubeapi import ApiEndpoint

__all__ = ["SA_DIR", "in_cluster", "is_ip", "resolve_host"]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_cluster(ctx: ContainerContext) -> ApiEndpoint | None:
    """The cluster's API as this container sees it; None when no token is mounted."""
    token_file = ctx.path(f"{SA_DIR}/token")
    if not token_file.exists():
        return None
    host = ctx.env.get("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    port = ctx.env.get("KUBERNETES_SERVICE_PORT", "443")
    ca_file = ctx.path(f"{SA_DIR}/ca.crt")
    ca = ca_file.read_text() if ca_file.exists() else ""
    return ApiEndpoint(cluster=ctx.cluster, server=f"{'https' if ca else 'http'}://{host}:{port}",
                       token=token_file.read_text().strip(), ca_pem=ca)


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve_host(api: ApiEndpoint | None, host: str) -> list[str]:
    """IP addresses for ``host``: itself if an IP, else the pod or Service it names.

    ``<pod>.<service>.<namespace>.svc[.cluster.local]`` → the pod's IP;
    ``<service>.<namespace>.svc[.cluster.local]`` → the Service's endpoint addresses
    (ready and not-ready alike when the Service publishes them, as the headless
    ``consul-server`` does). Unknown names and API errors give [].
    """
    if is_ip(host):
        return [host]
    if api is None:
        return []
    labels = host.removesuffix(".cluster.local").split(".")
    if labels and labels[-1] == "svc":
        labels = labels[:-1]
    try:
        async with api.session() as session:
            if len(labels) == 3:
                pod, _, ns = labels
                async with session.get(f"/api/v1/namespaces/{ns}/pods/{pod}") as reply:
                    if reply.status != 200:
                        return []
                    ip = ((await reply.json()).get("status") or {}).get("podIP")
                    return [ip] if ip else []
            if len(labels) == 2:
                svc, ns = labels
                async with session.get(f"/api/v1/namespaces/{ns}/endpoints/{svc}") as reply:
                    if reply.status != 200:
                        return []
                    ep = await reply.json()
                ips: list[str] = []
                for subset in ep.get("subsets") or []:
                    for addr in (subset.get("addresses") or []) + (
                            subset.get("notReadyAddresses") or []):
                        if addr.get("ip") and addr["ip"] not in ips:
                            ips.append(addr["ip"])
                return ips
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        return []
    return []
