"""The lab's Kubernetes API server: an aiohttp app over one cluster's ``MemoryStore``.

It serves discovery, CRUD, watch, patch, the ``status`` and ``scale``
subresources, and (through ``streams``) exec, attach, logs and the proxies, so
that the official Python client, ``chaosk8s`` and ``kubectl`` work unchanged.
Every request needs ``Authorization: Bearer <token>``; each is written to the
request log with the user its token maps to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from meshproof.lab.kube import discovery, streams
from meshproof.lab.kube.apierrors import (
    BadRequest,
    MethodNotAllowed,
    StoreError,
    Unauthorized,
    status_for,
    status_object,
)
from meshproof.lab.kube.bodies import read_body
from meshproof.lab.kube.interfaces import Conflict, NotFound, PodRuntime, ResourceKind
from meshproof.lab.kube.paging import page, parse_limit
from meshproof.lab.kube.patch import APPLY_PATCH, apply_patch, merge_patch, strategic_merge_patch
from meshproof.lab.kube.requestlog import RequestLog
from meshproof.lab.kube.resources import ResourceInfo
from meshproof.lab.kube.scale import read_scale, write_scale
from meshproof.lab.kube.store import MemoryStore
from meshproof.lab.kube.tables import to_table, wants_table
from meshproof.timeouts import DEFAULT_TIMEOUTS

__all__ = ["AUDIT", "ApiServer", "Authenticator", "Target"]

Obj = dict[str, Any]
Authenticator = Callable[[str], "str | None"]
"""Maps a bearer token to the user it authenticates, or None."""
# Resources whose DELETE answers with the object, not a Status (their REST strategies set
# ReturnDeletedObject; the client's generated delete_* methods expect it).
_RETURNS_DELETED_OBJECT = {("", "pods"), ("", "services"), ("", "serviceaccounts"),
                           ("", "persistentvolumeclaims")}
log = logging.getLogger(__name__)
AUDIT = web.RequestKey("audit", dict)
"""Where handlers note verb/resource/namespace/name for the request log."""
_CONNECT_SUBRESOURCES = {"exec", "attach", "log", "proxy", "eviction", "binding", "portforward"}


@dataclass(frozen=True, slots=True)
class Target:
    """What a resource URL names."""

    info: ResourceInfo
    namespace: str | None
    name: str
    subresource: str
    tail: str  # after ``/proxy/``

    @property
    def res(self) -> ResourceKind:
        return self.info.res


class ApiServer:
    """One cluster's API server. ``tokens`` maps bearer tokens to user names.

    ``runtime`` is the kubelet's ``PodRuntime`` (exec, logs, pod addresses); it may be
    set after construction. ``start`` binds a loopback port and returns the URL.
    """

    def __init__(self, store: MemoryStore, *, tokens: Mapping[str, str],
                 authenticators: Sequence[Authenticator] = (),
                 request_log: Path | None = None, runtime: PodRuntime | None = None,
                 bookmark_interval: float = 15.0, max_watch_seconds: float = 1800.0) -> None:
        self.store = store
        self.tokens = dict(tokens)
        self.authenticators = list(authenticators)
        self.runtime = runtime
        self.log = RequestLog(request_log)
        self.bookmark_interval = bookmark_interval
        self.max_watch_seconds = max_watch_seconds
        self.stopping = asyncio.Event()
        self.url = ""
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 2**20)
        self.app.router.add_route("*", "/{path:.*}", self._dispatch)
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None

    @property
    def cluster(self) -> str:
        return self.store.cluster

    async def start(self, host: str = "127.0.0.1", port: int = 0, *,
                    ssl_context: Any = None) -> str:
        """Serve on ``host:port`` (0: a free port); returns the base URL."""
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound = self._runner.addresses[0][1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        """End open watches and streams, then close the listener."""
        self.stopping.set()
        # Long-lived handlers (exec, follow, proxy) are cancelled rather than waited for.
        pending = [t for t in self._handlers if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    def http_session(self) -> aiohttp.ClientSession:
        """The client the proxy subresources forward with (one per server, made on first use)."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=DEFAULT_TIMEOUTS.api_request),
                auto_decompress=True)
        return self._http

    # -- middleware: authentication, errors, request log ---------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        request[AUDIT] = {"verb": request.method.lower()}
        user = ""
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            user = self._authenticate(request)
            response: web.StreamResponse = await handler(request)
        except Unauthorized as exc:
            self._describe_refused(request)
            response = status_response(status_for(exc))
        except StoreError as exc:
            response = status_response(status_for(exc))
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a server answers 500; it does not crash
            log.exception("%s %s failed in the API server of cluster %s", request.method,
                          request.path, self.cluster)
            response = status_response(status_object(
                500, "InternalError", f"an error on the server ({type(exc).__name__}: {exc}) "
                f"has prevented the request from succeeding (cluster {self.cluster})"))
        audit = request[AUDIT]
        self.log.write(user=user or "system:anonymous", code=response.status, path=request.path,
                       **{k: audit.get(k, "") for k in ("verb", "group", "resource",
                                                          "subresource", "namespace", "name")})
        return response

    def add_authenticator(self, authenticator: Authenticator) -> None:
        """Also accept bearer tokens ``authenticator`` maps to a user (e.g. pods' service
        account tokens); it returns None for a token it does not accept."""
        self.authenticators.append(authenticator)

    def _describe_refused(self, request: web.Request) -> None:
        """Fill the request log entry of a refused request from its path alone, so the log
        says what an unauthenticated client tried to reach."""
        parts = [p for p in request.path.split("/") if p]
        try:
            if len(parts) > 2 and parts[:2] == ["api", "v1"]:
                t = self.parse_target("", "v1", parts[2:])
            elif len(parts) > 3 and parts[0] == "apis":
                t = self.parse_target(parts[1], parts[2], parts[3:])
            else:
                return
        except StoreError:
            return
        request[AUDIT].update(group=t.res.group, resource=t.res.plural,
                              subresource=t.subresource, namespace=t.namespace or "",
                              name=_plain_name(t.name), verb=_verb(request, t))

    def _authenticate(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        user = self.tokens.get(token) if scheme.lower() == "bearer" and token else None
        for authenticator in self.authenticators if user is None and token else ():
            user = authenticator(token)
            if user:
                break
        if not user:
            raise Unauthorized("Unauthorized")
        return user

    # -- routing -------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        accept = request.headers.get("Accept", "")
        table = self.store.table
        if parts == ["version"]:
            return web.json_response(discovery.version_info())
        if parts == ["openapi", "v2"]:
            return openapi_v2_response(accept)
        if parts and parts[0] in ("healthz", "livez", "readyz"):
            return web.Response(text="ok")
        if parts == ["api"]:
            if discovery.wants_aggregated(accept):
                return aggregated_response(discovery.aggregated(table, core=True))
            host = request.host or self.url.split("://", 1)[-1]
            return web.json_response(discovery.core_versions(host))
        if parts == ["apis"]:
            if discovery.wants_aggregated(accept):
                return aggregated_response(discovery.aggregated(table, core=False))
            return web.json_response(discovery.group_list(table))
        if parts == ["api", "v1"]:
            return web.json_response(discovery.resource_list(table, "", "v1"))
        if len(parts) == 2 and parts[0] == "apis":
            return self._group(parts[1])
        if len(parts) == 3 and parts[0] == "apis":
            if not table.has_group_version(parts[1], parts[2]):
                raise NotFound("the server could not find the requested resource")
            return web.json_response(discovery.resource_list(table, parts[1], parts[2]))
        if len(parts) > 2 and parts[:2] == ["api", "v1"]:
            return await self._resource(request, "", "v1", parts[2:])
        if len(parts) > 3 and parts[0] == "apis":
            return await self._resource(request, parts[1], parts[2], parts[3:])
        raise NotFound("the server could not find the requested resource")

    def _group(self, group: str) -> web.Response:
        for name, versions in self.store.table.groups():
            if name == group and group:
                gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
                return web.json_response({"kind": "APIGroup", "apiVersion": "v1", "name": group,
                                          "versions": gvs, "preferredVersion": gvs[0]})
        raise NotFound("the server could not find the requested resource")

    def parse_target(self, group: str, version: str, rest: list[str]) -> Target:
        """Resolve ``rest`` (after ``/api/v1`` or ``/apis/<g>/<v>``) to a served resource."""
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace, rest = rest[1], rest[2:]
        plural, name = rest[0], rest[1] if len(rest) > 1 else ""
        sub, tail = (rest[2] if len(rest) > 2 else ""), "/".join(rest[3:])
        info = self.store.table.lookup(group, version, plural)
        if sub and sub not in info.res.subresources:
            raise NotFound("the server could not find the requested resource")
        return Target(info, namespace if info.res.namespaced else None, name, sub, tail)

    async def _resource(self, request: web.Request, group: str, version: str,
                        rest: list[str]) -> web.StreamResponse:
        t = self.parse_target(group, version, rest)
        request[AUDIT].update(group=group, resource=t.res.plural, subresource=t.subresource,
                              namespace=t.namespace or "", name=_plain_name(t.name),
                              verb=_verb(request, t))
        method = request.method
        if t.subresource in _CONNECT_SUBRESOURCES:
            return await streams.connect(self, request, t)
        if not t.name:
            if method == "GET":
                watch = request.query.get("watch", "") in ("true", "1")
                return await (self._watch(request, t) if watch else self._list(request, t))
            if method == "POST":
                return await self._create(request, t)
            if method == "DELETE":
                return await self._delete_collection(request, t)
            raise MethodNotAllowed(f"the server does not allow this method on the requested "
                                   f"resource ({method} {t.res.plural})")
        if method not in _NAMED_VERBS or (t.subresource and method == "DELETE"):
            raise MethodNotAllowed(f"the server does not allow this method on the requested "
                                   f"resource ({method} {t.res.plural}/{t.name})")
        if t.subresource == "scale":
            return await self._scale(request, t)
        if method == "GET":
            return web.json_response(await self.store.get(t.res, t.name, namespace=t.namespace))
        if method == "PUT":
            return await self._update(request, t)
        if method == "PATCH":
            return await self._patch(request, t)
        return await self._delete(request, t)

    # -- verbs ---------------------------------------------------------------------------

    async def _list(self, request: web.Request, t: Target) -> web.Response:
        q = request.query
        items, rv = await self.store.list(t.res, namespace=t.namespace,
                                          label_selector=q.get("labelSelector", ""),
                                          field_selector=q.get("fieldSelector", ""))
        chunk = page(items, limit=parse_limit(q.get("limit", "")), token=q.get("continue", ""),
                     resource_version=rv, compacted=self.store.compacted,
                     selected=bool(q.get("labelSelector") or q.get("fieldSelector")))
        if wants_table(request.headers.get("Accept", "")):
            crd = await self._crd_for(t) if t.info.crd else None
            table = to_table(t.res, chunk.items, rv, q.get("includeObject", ""), crd=crd)
            table["metadata"] = chunk.metadata
            return web.json_response(table, content_type="application/json")
        return web.json_response({"kind": f"{t.res.kind}List", "apiVersion": t.res.api_version,
                                  "metadata": chunk.metadata, "items": chunk.items})

    async def _watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        events = self.store.watch(t.res, namespace=t.namespace,
                                  label_selector=q.get("labelSelector", ""),
                                  field_selector=q.get("fieldSelector", ""),
                                  resource_version=q.get("resourceVersion", ""))
        timeout = min(float(q.get("timeoutSeconds") or self.max_watch_seconds),
                      self.max_watch_seconds)
        bookmarks = q.get("allowWatchBookmarks", "") in ("true", "1")
        table = wants_table(request.headers.get("Accept", ""))
        crd = await self._crd_for(t) if table and t.info.crd else None
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for event in events:
                    await queue.put(event)
            finally:
                await queue.put(None)

        pumper = asyncio.get_running_loop().create_task(pump())
        stopper = asyncio.get_running_loop().create_task(self.stopping.wait())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while not self.stopping.is_set():
                left = deadline - loop.time()
                if left <= 0:
                    break
                getter = loop.create_task(queue.get())
                done, _ = await asyncio.wait({getter, stopper},
                                             timeout=min(left, self.bookmark_interval),
                                             return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    if bookmarks and not self.stopping.is_set():
                        await _write_line(response, {"type": "BOOKMARK", "object": {
                            "kind": t.res.kind, "apiVersion": t.res.api_version,
                            "metadata": {"resourceVersion": self.store.resource_version}}})
                    continue
                event = getter.result()
                if event is None:
                    break
                obj = event.object
                if table and event.type not in ("ERROR", "BOOKMARK"):
                    obj = to_table(t.res, [obj], obj["metadata"].get("resourceVersion", ""),
                                   request.query.get("includeObject", ""), crd=crd)
                await _write_line(response, {"type": event.type, "object": obj})
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            for task in (pumper, stopper):
                task.cancel()
            with contextlib.suppress(BaseException):
                await events.aclose()  # type: ignore[attr-defined]
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    async def _create(self, request: web.Request, t: Target) -> web.Response:
        body = await read_body(request)
        self._check_body_kind(t, body)
        dry = request.query.get("dryRun") == "All"
        obj = await self.store.create(t.res, body, namespace=t.namespace, dry_run=dry)
        request[AUDIT]["name"] = obj["metadata"]["name"]
        return web.json_response(obj, status=201)

    def _check_body_kind(self, t: Target, body: Obj) -> None:
        if not isinstance(body, dict):
            raise BadRequest(f"the body of a {t.res.kind} request must be a JSON object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if (api_version and api_version != t.res.api_version) or (kind and kind != t.res.kind):
            raise BadRequest(f"the API version in the data ({api_version}) does not match the "
                             f"expected API version ({t.res.api_version}) or the kind ({kind}) "
                             f"is not {t.res.kind}")

    def _pin_identity(self, t: Target, body: Obj) -> Obj:
        meta = body.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != t.name:
            raise BadRequest(f"the name of the object ({meta['name']}) does not match the name "
                             f"on the URL ({t.name})")
        if t.res.namespaced and meta.get("namespace") not in (None, "", t.namespace):
            raise BadRequest("the namespace of the object does not match the namespace on "
                             "the URL")
        meta["name"] = t.name
        if t.res.namespaced:
            meta["namespace"] = t.namespace
        return body

    async def _update(self, request: web.Request, t: Target) -> web.Response:
        body = await read_body(request)
        self._check_body_kind(t, body)
        body = self._pin_identity(t, body)
        dry = request.query.get("dryRun") == "All"
        return web.json_response(await self.store.update(t.res, body, subresource=t.subresource,
                                                         dry_run=dry))

    async def _patch(self, request: web.Request, t: Target) -> web.Response:
        body = await read_body(request)
        ctype = request.headers.get("Content-Type", "")
        dry = request.query.get("dryRun") == "All"
        if ctype.split(";")[0].strip() == APPLY_PATCH:
            return await self._server_side_apply(t, body, dry)
        for _ in range(10):
            cur = await self.store.get(t.res, t.name, namespace=t.namespace)
            new = apply_patch(cur, ctype, body, builtin=not t.info.crd)
            if not isinstance(new, dict):
                raise BadRequest(f"the patch turned {t.res.kind} {t.name} into a non-object")
            new = self._pin_identity(t, new)
            # A patch naming a resourceVersion is a precondition; one that does not applies
            # to whatever is current, so a lost race is simply retried.
            precondition = new["metadata"].get("resourceVersion") != cur["metadata"].get(
                "resourceVersion")
            if not new["metadata"].get("resourceVersion"):
                new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            try:
                return web.json_response(await self.store.update(
                    t.res, new, subresource=t.subresource, dry_run=dry))
            except Conflict:
                if precondition:
                    raise
        raise Conflict(f'{t.res.plural} "{t.name}" kept changing while being patched in '
                       f"cluster {self.cluster}")

    async def _server_side_apply(self, t: Target, body: Obj, dry: bool) -> web.Response:
        """``kubectl apply --server-side``: create, or merge the applied fields in. Field
        ownership is not tracked, so conflicts between managers are never reported."""
        if not isinstance(body, dict):
            raise BadRequest("an apply patch must be an object")
        body = self._pin_identity(t, body)
        try:
            cur = await self.store.get(t.res, t.name, namespace=t.namespace)
        except NotFound:
            obj = await self.store.create(t.res, body, namespace=t.namespace, dry_run=dry)
            return web.json_response(obj, status=201)
        merged = (merge_patch(cur, body) if t.info.crd else strategic_merge_patch(cur, body))
        merged["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        return web.json_response(await self.store.update(t.res, merged,
                                                         subresource=t.subresource, dry_run=dry))

    async def _delete(self, request: web.Request, t: Target) -> web.Response:
        options = await delete_options(request)
        obj = await self.store.delete(
            t.res, t.name, namespace=t.namespace,
            grace_period_seconds=options.get("gracePeriodSeconds"),
            propagation_policy=options.get("propagationPolicy"),
            preconditions=options.get("preconditions"),
            dry_run="All" in (options.get("dryRun") or []))
        still_there = bool(obj["metadata"].get("deletionTimestamp"))
        if (t.res.group, t.res.plural) in _RETURNS_DELETED_OBJECT or still_there:
            return web.json_response(obj)
        return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success",
                                  "details": {"name": t.name, "group": t.res.group,
                                              "kind": t.res.plural,
                                              "uid": obj["metadata"].get("uid")}})

    async def _delete_collection(self, request: web.Request, t: Target) -> web.Response:
        options = await delete_options(request)
        q = request.query
        items, _ = await self.store.list(t.res, namespace=t.namespace,
                                         label_selector=q.get("labelSelector", ""),
                                         field_selector=q.get("fieldSelector", ""))
        deleted = []
        for item in items:
            meta = item["metadata"]
            with contextlib.suppress(NotFound):
                deleted.append(await self.store.delete(
                    t.res, meta["name"], namespace=meta.get("namespace"),
                    grace_period_seconds=options.get("gracePeriodSeconds"),
                    propagation_policy=options.get("propagationPolicy")))
        return web.json_response({"kind": f"{t.res.kind}List", "apiVersion": t.res.api_version,
                                  "metadata": {"resourceVersion": self.store.resource_version},
                                  "items": deleted})

    async def _scale(self, request: web.Request, t: Target) -> web.Response:
        crd = await self._crd_for(t) if t.info.crd else None
        obj = await self.store.get(t.res, t.name, namespace=t.namespace)
        if request.method == "GET":
            return web.json_response(read_scale(t.res, obj, crd))
        body = await read_body(request)
        current = read_scale(t.res, obj, crd)
        if request.method == "PATCH":
            wanted = apply_patch(current, request.headers.get("Content-Type", ""), body,
                                 builtin=True)
        else:
            wanted = body
        updated = write_scale(t.res, obj, crd, wanted)
        saved = await self.store.update(t.res, updated)
        return web.json_response(read_scale(t.res, saved, crd))

    async def _crd_for(self, t: Target) -> Obj:
        crds = self.store.table.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        return await self.store.get(crds.res, f"{t.res.plural}.{t.res.group}", namespace=None)


_NAMED_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_COLLECTION_VERBS = {"POST": "create", "DELETE": "deletecollection"}


def _verb(request: web.Request, t: Target) -> str:
    """The Kubernetes verb of a request, as audit logs name it."""
    if t.subresource in _CONNECT_SUBRESOURCES:
        return "get" if t.subresource == "log" else t.subresource
    if t.name:
        return _NAMED_VERBS.get(request.method, request.method.lower())
    if request.method == "GET":
        return "watch" if request.query.get("watch", "") in ("true", "1") else "list"
    return _COLLECTION_VERBS.get(request.method, request.method.lower())


def _plain_name(name: str) -> str:
    """The object name of a proxy target ``[scheme:]name[:port]``."""
    parts = name.split(":")
    return parts[1] if len(parts) == 3 else parts[0]


def status_response(status: Obj) -> web.Response:
    return web.json_response(status, status=int(status.get("code", 500)))


def aggregated_response(doc: Obj) -> web.Response:
    return web.Response(body=json.dumps(doc).encode(), headers={
        "Content-Type": discovery.AGGREGATED_CONTENT_TYPE})


def openapi_v2_response(accept: str) -> web.Response:
    """An OpenAPI v2 document with no definitions: kubectl then skips client-side schema
    validation and computes apply patches from its built-in types, as it does for any
    type the schema does not describe. kubectl asks for protobuf (gnostic ``Document``)."""
    if "protobuf" in accept:
        return web.Response(body=OPENAPI_V2_PROTOBUF, headers={
            "Content-Type": "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"})
    return web.json_response({"swagger": "2.0", "info": dict(_OPENAPI_INFO), "paths": {},
                              "definitions": {}})


_OPENAPI_INFO = {"title": "Kubernetes", "version": discovery.SERVER_VERSION["gitVersion"]}


def _proto_string(field: int, value: bytes) -> bytes:
    # Length-delimited protobuf field (wire type 2); every length here is below 128.
    return bytes([field << 3 | 2, len(value)]) + value


OPENAPI_V2_PROTOBUF = _proto_string(1, b"2.0") + _proto_string(2, _proto_string(
    1, _OPENAPI_INFO["title"].encode()) + _proto_string(2, _OPENAPI_INFO["version"].encode()))


async def delete_options(request: web.Request) -> Obj:
    """DeleteOptions from the body and the query (the query wins, as in the real server)."""
    body = await read_body(request) if request.can_read_body else {}
    options: Obj = body if isinstance(body, dict) else {}
    q = request.query
    if "gracePeriodSeconds" in q:
        options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
    if "propagationPolicy" in q:
        options["propagationPolicy"] = q["propagationPolicy"]
    if "dryRun" in q:
        options["dryRun"] = q.getall("dryRun")
    return options


async def _write_line(response: web.StreamResponse, obj: Obj) -> None:
    await response.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
