"""istiod's view of a Kubernetes API server: list-then-watch caches and a few writes.

The local cluster is reached in-cluster (service-account token and CA, as every
pod gets them); a remote cluster through the kubeconfig in its remote secret
(``istio-remote-secret-<name>``, label ``istio/multiCluster=true``), as real
istiod does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import yaml

__all__ = ["ApiEndpoint", "ApiWriter", "Informer", "endpoint_from_kubeconfig"]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApiEndpoint:
    cluster: str
    server: str
    token: str
    ca_pem: str = ""

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        return _client_context(self.ca_pem)

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            base_url=self.server,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
            connector=aiohttp.TCPConnector(ssl=self.ssl_context()),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None),
        )


@functools.lru_cache(maxsize=8)
def _client_context(ca_pem: str) -> ssl.SSLContext:
    """One client context per trusted CA: building one reads the system trust store, which
    costs more than the requests it serves (client-go likewise builds its transport once)."""
    context = ssl.create_default_context()
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    return context


def endpoint_from_kubeconfig(cluster: str, text: str) -> ApiEndpoint:
    """The first context of a kubeconfig (what ``istioctl create-remote-secret`` writes)."""
    config = yaml.safe_load(text) or {}
    current = config.get("current-context") or (config.get("contexts") or [{}])[0].get("name")
    ctx: Obj = next((c["context"] for c in config.get("contexts") or [] if c.get("name") == current),
               {})
    cl: Obj = next((c["cluster"] for c in config.get("clusters") or []
               if c.get("name") == ctx.get("cluster")), {})
    user: Obj = next((u["user"] for u in config.get("users") or []
                 if u.get("name") == ctx.get("user")), {})
    ca = cl.get("certificate-authority-data", "")
    return ApiEndpoint(
        cluster=cluster, server=str(cl.get("server", "")), token=str(user.get("token", "")),
        ca_pem=base64.b64decode(ca).decode() if ca else "",
    )


class Informer:
    """A cache of one resource type, kept current by list + watch; calls ``on_change``."""

    def __init__(self, endpoint: ApiEndpoint, path: str, on_change: Callable[[], None],
                 *, log: Callable[[str], None] = print) -> None:
        self.endpoint = endpoint
        self.path = path
        self.objects: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self._on_change = on_change
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def items(self) -> list[Obj]:
        return list(self.objects.values())

    @staticmethod
    def _key(obj: Obj) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return str(meta.get("namespace", "")), str(meta.get("name", ""))

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with self.endpoint.session() as session:
                    rv = await self._list(session)
                    backoff = 0.2
                    await self._watch(session, rv)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
                self._log(f"informer {self.endpoint.cluster} {self.path}: {exc}; retrying")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _list(self, session: aiohttp.ClientSession) -> str:
        async with session.get(self.path) as reply:
            if reply.status == 404:
                # The resource is not served (yet): an empty cache, retried later.
                self.objects = {}
                self.synced.set()
                raise ValueError(f"{self.path} not served")
            reply.raise_for_status()
            data = await reply.json()
        self.objects = {self._key(o): o for o in data.get("items") or []}
        self.synced.set()
        self._on_change()
        return str((data.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(self, session: aiohttp.ClientSession, rv: str) -> None:
        params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true",
                  "timeoutSeconds": "240"}
        async with session.get(self.path, params=params) as reply:
            reply.raise_for_status()
            async for line in reply.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    return  # 410 Gone and friends: list again
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    self.objects.pop(self._key(obj), None)
                else:
                    self.objects[self._key(obj)] = obj
                self._on_change()


class ApiWriter:
    """The few writes istiod makes: publish the root cert, patch the webhook's caBundle."""

    def __init__(self, endpoint: ApiEndpoint) -> None:
        self.endpoint = endpoint
        self._session: aiohttp.ClientSession | None = None

    @contextlib.asynccontextmanager
    async def _client(self) -> Any:
        """One kept-alive session for every write (a TLS handshake per request costs more
        than the request); dropped after a failure, so the next write reconnects."""
        if self._session is None or self._session.closed:
            self._session = self.endpoint.session()
        try:
            yield self._session
        except BaseException:
            await self._session.close()
            self._session = None
            raise

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def apply_configmap(self, namespace: str, name: str, data: dict[str, str],
                              labels: dict[str, str]) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "data": data}
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        async with self._client() as session:
            async with session.get(f"{path}/{name}") as reply:
                exists = reply.status == 200
                current = await reply.json() if exists else {}
            if exists and current.get("data") == data:
                return
            if exists:
                async with session.patch(
                        f"{path}/{name}", data=json.dumps({"data": data}),
                        headers={"Content-Type": "application/merge-patch+json"}) as reply:
                    reply.raise_for_status()
            else:
                async with session.post(path, json=body) as reply:
                    if reply.status != 409:
                        reply.raise_for_status()

    async def patch_webhook_ca(self, name: str, ca_pem: str) -> bool:
        """Set every webhook's caBundle of a MutatingWebhookConfiguration; False if absent."""
        path = f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
        bundle = base64.b64encode(ca_pem.encode()).decode()
        async with self._client() as session:
            async with session.get(path) as reply:
                if reply.status == 404:
                    return False
                reply.raise_for_status()
                config = await reply.json()
            hooks = config.get("webhooks") or []
            if all((h.get("clientConfig") or {}).get("caBundle") == bundle for h in hooks):
                return True
            ops = [{"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle}
                   for i in range(len(hooks))]
            async with session.patch(
                    path, data=json.dumps(ops),
                    headers={"Content-Type": "application/json-patch+json"}) as reply:
                reply.raise_for_status()
        return True
