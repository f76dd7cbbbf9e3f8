"""Connect-style subresources: ``pods/exec`` and ``pods/attach`` (websocket channel protocol),
``pods/log``, ``pods/proxy`` and ``services/proxy``, ``pods/eviction``, ``pods/binding``.

Exec speaks the ``v5.channel.k8s.io`` / ``v4.channel.k8s.io`` subprotocols: each binary
frame starts with its channel (0 stdin, 1 stdout, 2 stderr, 3 the final ``Status``,
4 terminal resize; v5 adds 255, "close this channel"). See kubernetes/kubernetes
``staging/src/k8s.io/apimachinery/pkg/util/remotecommand/constants.go`` and
``staging/src/k8s.io/apiserver/pkg/util/wsstream/conn.go``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import aiohttp
from aiohttp import web

from meshproof.lab.kube.apierrors import (
    BadRequest,
    MethodNotAllowed,
    ServiceUnavailable,
    TooManyRequests,
)
from meshproof.lab.kube.bodies import read_body
from meshproof.lab.kube.interfaces import (
    Conflict,
    ExecSession,
    Invalid,
    NotFound,
    PodRuntime,
    ResourceKind,
)
from meshproof.lab.kube.selectors import selector_from_match
from meshproof.timeouts import DEFAULT_TIMEOUTS

if TYPE_CHECKING:
    from meshproof.lab.kube.server import ApiServer, Target

__all__ = ["CHANNEL_PROTOCOLS", "PodAttacher", "connect", "exit_status"]

Obj = dict[str, Any]
CHANNEL_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_STDIN, _STDOUT, _STDERR, _ERROR, _RESIZE, _CLOSE = 0, 1, 2, 3, 4, 255
# "authorization" too: the API server's authentication filter deletes the caller's
# Authorization header once it has authenticated it (kubernetes/kubernetes
# staging/src/k8s.io/apiserver/pkg/endpoints/filters/authentication.go, WithAuthentication:
# req.Header.Del("Authorization")), so pods/proxy and services/proxy never pass it on.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailer", "transfer-encoding", "upgrade", "host", "authorization",
               "content-length", "accept-encoding", "content-encoding"}
_PODS = ResourceKind("", "v1", "pods", "Pod")
_ENDPOINTS = ResourceKind("", "v1", "endpoints", "Endpoints")
_PDBS = ResourceKind("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")


@runtime_checkable
class PodAttacher(Protocol):
    """What a ``PodRuntime`` offers, beyond the seam, to serve ``pods/attach``: the streams
    of a container's main process (``kubectl run -it``, ``kubectl attach``)."""

    async def attach(self, namespace: str, pod: str, container: str, *, stdin: bool = False,
                     tty: bool = False) -> ExecSession: ...


async def connect(server: ApiServer, request: web.Request, t: Target) -> web.StreamResponse:
    """Serve one connect subresource request."""
    sub, plural = t.subresource, t.res.plural
    if plural == "pods" and sub in ("exec", "attach"):
        return await _exec(server, request, t)
    if plural == "pods" and sub == "log":
        return await _log(server, request, t)
    if plural in ("pods", "services") and sub == "proxy":
        return await _proxy(server, request, t)
    if plural == "pods" and sub == "eviction" and request.method == "POST":
        return await _evict(server, request, t)
    if plural == "pods" and sub == "binding" and request.method == "POST":
        return await _bind(server, request, t)
    raise MethodNotAllowed(f"{request.method} {plural}/{sub} is not served by the lab API "
                           f"server of cluster {server.cluster}")


def _runtime(server: ApiServer, what: str) -> PodRuntime:
    if server.runtime is None:
        raise ServiceUnavailable(f"no kubelet is attached to the API server of cluster "
                                 f"{server.cluster}, so {what} cannot be served")
    return server.runtime


def _container(pod: Obj, wanted: str) -> str:
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    if wanted:
        init = [c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []]
        if wanted not in names and wanted not in init:
            raise BadRequest(f"container {wanted} is not valid for pod "
                             f"{pod['metadata']['name']}")
        return wanted
    default = (pod["metadata"].get("annotations") or {}).get(
        "kubectl.kubernetes.io/default-container")
    if default in names:
        return str(default)
    if not names:
        raise BadRequest(f"pod {pod['metadata']['name']} has no containers")
    return names[0]


def exit_status(code: int, command: list[str]) -> Obj:
    """The Status sent on the error channel when a command ends."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{command}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    return default if value is None else value.lower() in ("true", "1")


async def _exec(server: ApiServer, request: web.Request, t: Target) -> web.StreamResponse:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise BadRequest("Upgrade request required: the lab API server serves exec and attach "
                         f"over websocket ({', '.join(CHANNEL_PROTOCOLS)}) only")
    runtime = _runtime(server, t.subresource)
    pod = await server.store.get(_PODS, t.name, namespace=t.namespace)
    container = _container(pod, request.query.get("container", ""))
    command = request.query.getall("command", [])
    stdin, tty = _flag(request, "stdin"), _flag(request, "tty")
    if t.subresource == "attach":
        if not isinstance(runtime, PodAttacher):
            raise BadRequest(f"attach is not offered by the kubelet of cluster {server.cluster}")
        session: ExecSession = await runtime.attach(t.namespace or "", t.name, container,
                                                    stdin=stdin, tty=tty)
    else:
        if not command:
            raise BadRequest("you must specify at least 1 command")
        try:
            session = await runtime.exec(t.namespace or "", t.name, container, command,
                                         stdin=stdin, tty=tty)
        except Invalid as exc:
            # A pod that is not running is a 400 from a real API server, not a 422.
            raise BadRequest(str(exc)) from exc
    ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, heartbeat=None, max_msg_size=0,
                               autoping=True)
    await ws.prepare(request)
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    send = {_STDOUT: _flag(request, "stdout", True), _STDERR: _flag(request, "stderr", True)}

    async def pump_out(stream: AsyncIterator[bytes], channel: int) -> None:
        async for chunk in stream:
            if chunk and send[channel] and not ws.closed:
                await ws.send_bytes(bytes([channel]) + chunk)

    async def pump_in() -> None:
        async for msg in ws:
            if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                break
            data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            if not data:
                continue
            if data[0] == _STDIN and stdin:
                await session.write_stdin(data[1:])
            elif data[0] == _CLOSE and v5 and data[1:2] == bytes([_STDIN]):
                await session.close_stdin()

    outputs = asyncio.gather(pump_out(session.stdout, _STDOUT),
                             pump_out(session.stderr, _STDERR))
    reader = asyncio.ensure_future(pump_in())
    finished = asyncio.ensure_future(_outputs_then_wait(outputs, session))
    try:
        done, _ = await asyncio.wait({finished, reader}, return_when=asyncio.FIRST_COMPLETED)
        if finished in done:
            code = finished.result()
            if not ws.closed:
                await ws.send_bytes(bytes([_ERROR]) + json.dumps(exit_status(code, command))
                                    .encode())
        else:
            # The client went away: stop what it started (bounded: a stuck kill must not
            # pin the handler).
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(session.kill(), DEFAULT_TIMEOUTS.api_request)
            finished.cancel()
    finally:
        reader.cancel()
        outputs.cancel()
        with contextlib.suppress(BaseException):
            await finished
        await ws.close()
    return ws


async def _outputs_then_wait(outputs: asyncio.Future[Any], session: ExecSession) -> int:
    with contextlib.suppress(Exception):
        await outputs
    return await session.wait()


async def _log(server: ApiServer, request: web.Request, t: Target) -> web.StreamResponse:
    runtime = _runtime(server, "logs")
    pod = await server.store.get(_PODS, t.name, namespace=t.namespace)
    container = _container(pod, request.query.get("container", ""))
    try:
        path = runtime.log_path(t.namespace or "", t.name, container,
                                previous=_flag(request, "previous"))
    except Invalid as exc:
        raise BadRequest(str(exc)) from exc  # "waiting to start" is a 400 upstream too
    if not path.exists():
        raise BadRequest(f'container "{container}" in pod "{t.name}" is waiting to start')
    data = path.read_bytes()
    offset = len(data)  # following resumes exactly after what was read, never after stat()
    if "tailLines" in request.query:
        lines = data.splitlines(keepends=True)
        count = int(request.query["tailLines"])
        data = b"".join(lines[-count:]) if count > 0 else b""
    if "limitBytes" in request.query:
        data = data[: int(request.query["limitBytes"])]
    if not _flag(request, "follow"):
        return web.Response(body=data, content_type="text/plain")
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    await response.write(data)
    interval = DEFAULT_TIMEOUTS.poll_interval / 2
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        # Follow until the pod is gone, the container restarts (its log starts afresh) or
        # the server stops, as a kubelet does.
        while not server.stopping.is_set():
            if not path.exists() or path.stat().st_size < offset:
                break
            with path.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            if chunk:
                offset += len(chunk)
                await response.write(chunk)
                continue
            try:
                await server.store.get(_PODS, t.name, namespace=t.namespace)
            except NotFound:
                break
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(server.stopping.wait(), interval)
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response


def _split_proxy_name(raw: str) -> tuple[str, str, str]:
    """``[scheme:]name[:port]`` as the proxy subresource names its target."""
    parts = raw.split(":")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    return "", parts[0], ""


async def _pod_target(server: ApiServer, t: Target, name: str, port: str) -> str:
    pod = await server.store.get(_PODS, name, namespace=t.namespace)
    if port and not port.isdigit():
        named = [p.get("containerPort") for c in (pod.get("spec") or {}).get("containers") or []
                 for p in c.get("ports") or [] if p.get("name") == port]
        if not named:
            raise BadRequest(f"pod {name} in cluster {server.cluster} has no port named {port}")
        port = str(named[0])
    if server.runtime is not None:
        address = server.runtime.pod_address(t.namespace or "", name)
    else:
        address = (pod.get("status") or {}).get("podIP", "")
    if not address:
        raise ServiceUnavailable(f"pod {t.namespace}/{name} in cluster {server.cluster} has "
                                 f"no IP yet, so it cannot be proxied to")
    return f"{address}:{port or '80'}"


async def _service_target(server: ApiServer, t: Target, name: str, port: str) -> str:
    svc_res = server.store.kind_for("v1", "Service")
    svc = await server.store.get(svc_res, name, namespace=t.namespace)
    ports = (svc.get("spec") or {}).get("ports") or []
    chosen = next((p for p in ports if port and (p.get("name") == port
                                                 or str(p.get("port")) == port)), None)
    if chosen is None and not port and ports:
        chosen = ports[0]
    if chosen is None:
        raise ServiceUnavailable(f'no service port "{port}" found for service "{name}" in '
                                 f"cluster {server.cluster}")
    try:
        endpoints = await server.store.get(_ENDPOINTS, name, namespace=t.namespace)
    except NotFound:
        endpoints = {}
    candidates = []
    for subset in endpoints.get("subsets") or []:
        eports = subset.get("ports") or []
        match = next((p for p in eports if p.get("name", "") == chosen.get("name", "")),
                     eports[0] if len(eports) == 1 else None)
        if match is None:
            continue
        candidates += [f"{a['ip']}:{match['port']}" for a in subset.get("addresses") or []]
    if not candidates:
        raise ServiceUnavailable(f'no endpoints available for service "{name}" in cluster '
                                 f"{server.cluster}")
    return random.choice(candidates)


async def _proxy(server: ApiServer, request: web.Request, t: Target) -> web.StreamResponse:
    scheme, name, port = _split_proxy_name(t.name)
    if t.res.plural == "pods":
        hostport = await _pod_target(server, t, name, port)
    else:
        hostport = await _service_target(server, t, name, port)
    scheme = scheme or "http"
    url = f"{scheme}://{hostport}/{t.tail}"
    if request.query_string:
        url += "?" + request.query_string
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    body = await request.read()
    try:
        async with server.http_session().request(
                request.method, url, headers=headers, data=body or None, ssl=False,
                allow_redirects=False) as upstream:
            payload = await upstream.read()
            out_headers = {k: v for k, v in upstream.headers.items()
                           if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=upstream.status, body=payload, headers=out_headers)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise ServiceUnavailable(f"error trying to reach {t.res.kind.lower()} {t.namespace}/"
                                 f"{name} at {hostport} in cluster {server.cluster}: "
                                 f"{exc or type(exc).__name__}") from exc


async def _evict(server: ApiServer, request: web.Request, t: Target) -> web.Response:
    body = await read_body(request)
    pod = await server.store.get(_PODS, t.name, namespace=t.namespace)
    labels = pod["metadata"].get("labels") or {}
    pdbs, _ = await server.store.list(_PDBS, namespace=t.namespace)
    for pdb in pdbs:
        if not selector_from_match((pdb.get("spec") or {}).get("selector")).matches(labels):
            continue
        allowed = (pdb.get("status") or {}).get("disruptionsAllowed")
        if allowed is not None and allowed <= 0:
            raise TooManyRequests("Cannot evict pod as it would violate the pod's disruption "
                                  f"budget (pdb {pdb['metadata']['name']} in cluster "
                                  f"{server.cluster}).",
                                  details={"causes": [{"reason": "DisruptionBudget",
                                                       "message": "The disruption budget "
                                                       f"{pdb['metadata']['name']} needs more "
                                                       "healthy pods"}]})
    options = (body or {}).get("deleteOptions") or {}
    await server.store.delete(_PODS, t.name, namespace=t.namespace,
                              grace_period_seconds=options.get("gracePeriodSeconds"))
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success"}, status=201)


async def _bind(server: ApiServer, request: web.Request, t: Target) -> web.Response:
    body = await read_body(request)
    node = ((body or {}).get("target") or {}).get("name")
    if not node:
        raise BadRequest(f"binding of pod {t.name} names no target node")

    def bind(pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            raise Conflict(f"pod {t.name} is already assigned to node "
                           f"{pod['spec']['nodeName']}")
        pod.setdefault("spec", {})["nodeName"] = node

    await server.store.mutate(_PODS, t.name, bind, namespace=t.namespace)
    return web.json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Success"}, status=201)
