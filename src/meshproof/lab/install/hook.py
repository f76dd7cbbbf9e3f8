"""What ``meshproof lab up`` does once the clusters serve: install the mesh, publish the
target file with each cluster's Prometheus and Consul, and wait for the first scrapes."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import yaml

from meshproof.errors import LabError
from meshproof.lab.install.bootstrap import LabClusterLike, install_mesh
from meshproof.lab.state import ClusterEndpoint, LabPaths, write_target
from meshproof.timeouts import DEFAULT_TIMEOUTS

__all__ = ["install_mesh_hook", "prometheus_url", "LAB_FAULTS", "SCRAPED_APPS"]

SCRAPED_APPS = ("istiod", "istio-eastwestgateway")
"""``up`` of these is what the availability guarantees read; the lab is ready once they show."""


LAB_FAULTS = ("eastwest-gateway-loss", "istiod-outage", "http-fault", "circuit-breaker-trip",
              "mesh-config-loss", "certificate-rotation", "consul-server-loss",
              "certificate-expiring", "tls-handshake-failures")
"""The drill faults the lab's target allows in every cluster (its blast radius): the lab
is disposable, and every drill experiment must be able to run on it."""


class HookCluster(LabClusterLike, Protocol):
    token: str

    def endpoint(self) -> ClusterEndpoint: ...


def prometheus_url(api_url: str) -> str:
    """The cluster's Prometheus through the API server's ``services/proxy``."""
    return f"{api_url}/api/v1/namespaces/istio-system/services/prometheus:9090/proxy"


async def _scraped(cluster: HookCluster, *, timeout: float) -> None:
    context = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    headers = {"Authorization": f"Bearer {cluster.token}"}
    base = prometheus_url(cluster.url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    missing: list[str] = list(SCRAPED_APPS)
    async with aiohttp.ClientSession(headers=headers,
                                     connector=aiohttp.TCPConnector(ssl=context)) as session:
        while True:
            missing = []
            for app in SCRAPED_APPS:
                query = quote(f'up{{job="kubernetes-pods",app="{app}"}} == 1')
                try:
                    async with session.get(f"{base}/api/v1/query?query={query}") as reply:
                        body: Any = json.loads(await reply.text()) if reply.status == 200 else {}
                except (aiohttp.ClientError, OSError, ValueError):
                    body = {}
                if not ((body.get("data") or {}).get("result")):
                    missing.append(app)
            if not missing:
                return
            if loop.time() > deadline:
                raise LabError(f"{cluster.name}: Prometheus has not scraped "
                               f"{', '.join(missing)} after {timeout:g}s")
            await asyncio.sleep(1.0)


async def install_mesh_hook(running: Sequence[Any], paths: LabPaths, *,
                            istio_tag: str | None = None) -> None:
    clusters: Sequence[HookCluster] = running
    timeout = DEFAULT_TIMEOUTS.lab_mesh
    await install_mesh(clusters, paths.root, timeout=timeout, istio_tag=istio_tag)
    prometheus = {}
    for cluster in clusters:
        token_file = paths.root / f"{cluster.name}.token"
        token_file.write_text(cluster.token + "\n")
        token_file.chmod(0o600)
        ca_file = paths.root / f"{cluster.name}-ca.pem"
        ca_file.write_bytes(cluster.ca_pem)
        prometheus[cluster.name] = {"url": prometheus_url(cluster.url),
                                    "bearer_token_file": token_file.name,
                                    "ca_file": ca_file.name}
    await asyncio.gather(*(_scraped(c, timeout=timeout) for c in clusters))
    write_target(paths.target, [c.endpoint() for c in clusters], prometheus=prometheus,
                 consul=True)
    _allow_lab_faults(paths.target, [c.name for c in clusters])


def _allow_lab_faults(path: Path, clusters: Sequence[str]) -> None:
    """Add the blast radius (``destructive.allowed``) to the target file just written."""
    text = path.read_text()
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    doc = yaml.safe_load(text)
    doc["destructive"] = {"allowed": {name: list(LAB_FAULTS) for name in clusters}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    tmp.replace(path)
