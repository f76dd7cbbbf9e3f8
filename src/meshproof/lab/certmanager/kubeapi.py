"""The controller's Kubernetes API client: list-then-watch caches and the few writes it makes.

In a pod the API is reached in-cluster (``$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``,
the service-account token and ``ca.crt``); ``--kubeconfig`` (cert-manager's own flag)
points it elsewhere, which is how tests use a test API server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from meshproof.errors import ConfigError, TargetUnreachable

__all__ = ["ApiClient", "ApiEndpoint", "ApiError", "Informer", "endpoint_from_kubeconfig",
           "in_cluster_endpoint"]

Obj = dict[str, Any]
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_TOKEN_RELOAD = 60.0  # seconds, client-go's cache time for a token file


class ApiError(TargetUnreachable):
    """A request the API server answered with an error (``status`` holds the HTTP code)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ApiEndpoint:
    """Where the API server is and how to authenticate to it."""

    server: str
    token: str
    ca_pem: str = ""
    token_file: str = ""
    """Re-read for every request after a minute, as client-go does: projected
    service-account tokens are rotated by the kubelet."""

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https"):
            return False
        context = ssl.create_default_context()
        if self.ca_pem:
            context.load_verify_locations(cadata=self.ca_pem)
        return context


def in_cluster_endpoint(env: dict[str, str], sa_dir: Path) -> ApiEndpoint:
    """The pod's own cluster, as client-go's ``rest.InClusterConfig`` finds it."""
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError("cannot reach the Kubernetes API in-cluster: KUBERNETES_SERVICE_HOST "
                          "and KUBERNETES_SERVICE_PORT are not set (use --kubeconfig)")
    try:
        token = (sa_dir / "token").read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the service-account token in {sa_dir}: {exc}") from exc
    ca_file = sa_dir / "ca.crt"
    ca = ca_file.read_text() if ca_file.exists() else ""
    return ApiEndpoint(server=f"https://{host}:{port}", token=token, ca_pem=ca,
                       token_file=str(sa_dir / "token"))


def endpoint_from_kubeconfig(path: Path) -> ApiEndpoint:
    """The current context of a kubeconfig file (bearer-token users only)."""
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
    current = config.get("current-context") or (config.get("contexts") or [{}])[0].get("name")
    ctx: Obj = next((c["context"] for c in config.get("contexts") or []
                     if c.get("name") == current), {})
    cluster: Obj = next((c["cluster"] for c in config.get("clusters") or []
                         if c.get("name") == ctx.get("cluster")), {})
    user: Obj = next((u["user"] for u in config.get("users") or []
                      if u.get("name") == ctx.get("user")), {})
    if not cluster.get("server"):
        raise ConfigError(f"kubeconfig {path}: context {current!r} names no cluster server")
    ca = cluster.get("certificate-authority-data", "")
    ca_pem = base64.b64decode(ca).decode() if ca else ""
    if not ca_pem and cluster.get("certificate-authority"):
        ca_pem = Path(cluster["certificate-authority"]).read_text()
    return ApiEndpoint(server=str(cluster["server"]), token=str(user.get("token", "")),
                       ca_pem=ca_pem)


class ApiClient:
    """One HTTP session to the API server; JSON in, JSON out, errors as ``ApiError``."""

    def __init__(self, endpoint: ApiEndpoint, *, user_agent: str) -> None:
        self.endpoint = endpoint
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._token = endpoint.token
        self._token_read = time.monotonic()

    def _authorization(self) -> dict[str, str]:
        if self.endpoint.token_file and time.monotonic() - self._token_read > _TOKEN_RELOAD:
            try:
                self._token = Path(self.endpoint.token_file).read_text().strip()
            except OSError:
                pass  # keep the last token: the kubelet may be rewriting the file
            self._token_read = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                base_url=self.endpoint.server,
                headers={"Accept": "application/json", "User-Agent": self._user_agent},
                connector=aiohttp.TCPConnector(ssl=self.endpoint.ssl_context()),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str = "application/json",
                      params: dict[str, str] | None = None) -> Obj:
        data = json.dumps(body) if body is not None else None
        try:
            async with self.session.request(
                    method, path, data=data, params=params,
                    headers={"Content-Type": content_type, **self._authorization()},
                    timeout=aiohttp.ClientTimeout(total=15)) as reply:
                text = await reply.text()
                if reply.status >= 400:
                    try:
                        message = json.loads(text).get("message", text)
                    except ValueError:
                        message = text
                    raise ApiError(f"{method} {path}: {reply.status} {message}", reply.status)
                return json.loads(text) if text else {}
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ApiError(f"{method} {path} on {self.endpoint.server}: {exc}", 0) from exc

    async def get(self, path: str) -> Obj | None:
        """The object at ``path``, or None if it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: Obj) -> Obj:
        """POST ``body`` to the collection at ``path``; the created object."""
        return await self.request("POST", path, body)

    async def merge_patch(self, path: str, body: Obj) -> Obj:
        """A JSON merge patch (RFC 7386: ``None`` removes a key); the patched object."""
        return await self.request("PATCH", path, body,
                                  content_type="application/merge-patch+json")

    async def delete(self, path: str) -> None:
        """DELETE ``path``; an object already gone is not an error."""
        try:
            await self.request("DELETE", path)
        except ApiError as exc:
            if exc.status != 404:
                raise

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[Obj]:
        """Watch events after ``resource_version`` until the server ends the stream."""
        params = {"watch": "true", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
        async with self.session.get(path, params=params,
                                    headers=self._authorization()) as reply:
            if reply.status >= 400:
                raise ApiError(f"WATCH {path}: {reply.status}", reply.status)
            async for line in reply.content:
                if line.strip():
                    yield json.loads(line)


def _older(a: Obj, b: Obj) -> bool:
    """Whether ``a`` is an older version than ``b`` (resourceVersions compared as numbers
    when both are, as the lab's and etcd's are; otherwise not older)."""
    ra = str((a.get("metadata") or {}).get("resourceVersion", ""))
    rb = str((b.get("metadata") or {}).get("resourceVersion", ""))
    return ra.isdigit() and rb.isdigit() and int(ra) < int(rb)


class Informer:
    """A cache of one resource type in every namespace, kept current by list + watch."""

    def __init__(self, client: ApiClient, path: str, on_change: Callable[[], None],
                 *, log: Callable[[str], None]) -> None:
        self.client = client
        self.path = path
        self.objects: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self._on_change = on_change
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.objects.get((namespace, name))

    def items(self) -> list[Obj]:
        return list(self.objects.values())

    def put(self, obj: Obj) -> None:
        """Record an object this process just wrote (or a watch event), unless the cache
        already holds a newer version: the controller must not act on its own stale state."""
        key = self._key(obj)
        current = self.objects.get(key)
        if current is None or not _older(obj, current):
            self.objects[key] = obj

    @staticmethod
    def _key(obj: Obj) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return str(meta.get("namespace", "")), str(meta.get("name", ""))

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                data = await self.client.request("GET", self.path)
                self.objects = {self._key(o): o for o in data.get("items") or []}
                self.synced.set()
                self._on_change()
                backoff = 0.2
                rv = str((data.get("metadata") or {}).get("resourceVersion", ""))
                async for event in self.client.watch(self.path, rv):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        break  # 410 Gone and the like: list again
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self.objects.pop(self._key(obj), None)
                    else:
                        self.put(obj)
                    self._on_change()
            except asyncio.CancelledError:
                raise
            except (TimeoutError, ApiError, aiohttp.ClientError, OSError, ValueError) as exc:
                self._log(f"informer {self.path}: {exc}; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
