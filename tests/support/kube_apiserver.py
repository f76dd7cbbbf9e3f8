"""One lab API server (store + server, no controllers) on a free loopback port, for tests.

The server runs on its own asyncio loop in a background thread; ``call`` runs a
coroutine on that loop (to reach the store directly, as a controller would).
A kubeconfig with a bearer token is written next to the request log.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from meshproof.lab.kube.interfaces import PodRuntime
from meshproof.lab.kube.requestlog import RequestRecord, read_request_log
from meshproof.lab.kube.server import ApiServer
from meshproof.lab.kube.servingcert import make_serving_cert
from meshproof.lab.kube.store import MemoryStore

__all__ = ["RunningApiServer", "running_apiserver", "write_kubeconfig"]

T = TypeVar("T")


@dataclass
class RunningApiServer:
    """A started API server and what a test needs to reach it."""

    cluster: str
    url: str
    token: str
    kubeconfig: Path
    ca_file: Path
    request_log: Path
    store: MemoryStore
    server: ApiServer
    loop: asyncio.AbstractEventLoop

    def call(self, coro: Awaitable[T], timeout: float = 10.0) -> T:
        """Run ``coro`` on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def requests(self) -> list[RequestRecord]:
        return list(read_request_log(self.request_log))

    def kubectl_env(self) -> dict[str, str]:
        """Environment for a ``kubectl`` subprocess: this kubeconfig, a private cache dir."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["KUBECACHEDIR"] = str(self.kubeconfig.parent / "kube-cache")
        env["HOME"] = str(self.kubeconfig.parent)
        return env


def write_kubeconfig(path: Path, *, cluster: str, url: str, token: str, ca_pem: bytes,
                     namespace: str = "default") -> Path:
    """A kubeconfig with one context named after the cluster."""
    ca_data = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": cluster, "cluster": {"server": url,
                                                   "certificate-authority-data": ca_data}}],
        "users": [{"name": f"{cluster}-admin", "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster,
                                                   "user": f"{cluster}-admin",
                                                   "namespace": namespace}}],
        "current-context": cluster,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
    return path


@contextmanager
def running_apiserver(directory: Path, *, cluster: str = "aws-eks",
                      runtime: PodRuntime | None = None, user: str = "lab-admin",
                      history: int = 10000, **server_options: Any) -> Iterator[RunningApiServer]:
    """Start a store and API server, yield them, stop both and the loop thread.

    ``history`` is how many changes a watch can resume across; ``server_options`` go to
    ``ApiServer`` (e.g. ``bookmark_interval``)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"apiserver-{cluster}", daemon=True)
    thread.start()
    token = secrets.token_urlsafe(24)
    request_log = directory / f"{cluster}-requests.jsonl"
    cert = make_serving_cert(cluster)
    ca_file = directory / f"{cluster}-ca.crt"
    ca_file.write_bytes(cert.ca_pem)

    async def start() -> tuple[MemoryStore, ApiServer, str]:
        store = MemoryStore(cluster, history=history)
        server = ApiServer(store, tokens={token: user}, request_log=request_log,
                           runtime=runtime, **server_options)
        return store, server, await server.start("127.0.0.1", 0,
                                                 ssl_context=cert.server_context())

    store, server, url = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    kubeconfig = write_kubeconfig(directory / "kubeconfig", cluster=cluster, url=url,
                                  token=token, ca_pem=cert.ca_pem)
    running = RunningApiServer(cluster, url, token, kubeconfig, ca_file, request_log, store,
                               server, loop)
    try:
        yield running
    finally:
        async def stop() -> None:
            await server.stop()
            await store.close()

        try:
            asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
