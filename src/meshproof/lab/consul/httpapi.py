"""Consul's HTTP API (port 8500) as the lab's server agent serves it.

Shapes follow hashicorp/consul ``website/content/api-docs/`` (catalog, health,
agent, status, kv) and ``api/`` (the Go client the tools use). Every read carries
``X-Consul-Index``, ``X-Consul-KnownLeader`` and ``X-Consul-LastContact``; ``index``
+ ``wait`` make a read block until the index passes ``index``. A follower forwards
catalog, health and KV requests to the leader, as Consul's RPC layer does; with no
leader they fail with ``500 No cluster leader``. ``?dc=`` naming another datacenter
fails with ``500 No path to datacenter``: the two clusters' datacenters are not
federated (see the package README).
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from meshproof.lab.consul.state import RegistrationError

if TYPE_CHECKING:
    from meshproof.lab.consul.agent import ServerAgent

__all__ = ["make_app", "parse_wait"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_WAIT = 600.0
DEFAULT_WAIT = 300.0
_FORWARDED = ("/v1/catalog/", "/v1/health/", "/v1/kv/")


def parse_wait(text: str) -> float:
    """A Go duration as Consul accepts it for ``wait`` (``10s``, ``1m``, ``500ms``)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m:
        raise ValueError(f"Invalid wait time: {text!r}")
    value = float(m.group(1))
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[m.group(2)]
    return min(value * scale, MAX_WAIT)


def _text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body, content_type="text/plain")


def make_app(agent: ServerAgent) -> web.Application:
    """The aiohttp application serving ``/v1/...`` for ``agent``."""

    def headers(index: int | None = None) -> dict[str, str]:
        cluster = agent.cluster
        known = bool(cluster.leader_address)
        contact = 0 if cluster.leader else int((time.monotonic() - cluster.last_contact) * 1000)
        return {"X-Consul-Index": str(index if index is not None else cluster.state.index),
                "X-Consul-KnownLeader": "true" if known else "false",
                "X-Consul-LastContact": str(contact),
                "X-Consul-Effective-Consistency": "leader",
                "X-Consul-Default-ACL-Policy": "allow"}

    def reply(data: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, text=json.dumps(data),
                            content_type="application/json", headers=headers())

    async def block(request: web.Request) -> None:
        """Honour ``index`` / ``wait`` before a read is answered."""
        if "index" not in request.query:
            return
        try:
            index = int(request.query["index"])
            wait = parse_wait(request.query["wait"]) if "wait" in request.query else DEFAULT_WAIT
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        # Consul answers at once when the client's index is from the future (a reset store).
        if index <= agent.cluster.state.index:
            await agent.cluster.wait_for_index(index, wait)

    @web.middleware
    async def route(request: web.Request, handler: Handler) -> web.StreamResponse:
        dc = request.query.get("dc")
        if dc and dc != agent.datacenter:
            return _text(500, "No path to datacenter")
        if request.path.startswith(_FORWARDED) and not agent.cluster.leader:
            return await forward(request)
        try:
            return await handler(request)
        except RegistrationError as exc:
            return _text(400, str(exc))
        except json.JSONDecodeError as exc:
            return _text(400, f"Request decode failed: {exc}")

    async def forward(request: web.Request) -> web.StreamResponse:
        leader = agent.cluster.leader_address
        if not leader:
            return _text(500, "No cluster leader")
        url = f"http://{leader}:{agent.http_port}{request.path_qs}"
        body = await request.read()
        try:
            async with agent.forward_session().request(request.method, url, data=body or None,
                                                      headers={"Content-Type": request.content_type}
                                                      ) as upstream:
                payload = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.startswith("X-Consul-")}
                out["X-Consul-LastContact"] = str(
                    int((time.monotonic() - agent.cluster.last_contact) * 1000))
                return web.Response(status=upstream.status, body=payload, headers=out,
                                    content_type=upstream.content_type)
        except (aiohttp.ClientError, OSError, TimeoutError):
            return _text(500, "rpc error making call: No cluster leader")

    async def write(apply: Any) -> bool:
        changed = apply(agent.cluster.state)
        if changed:
            await agent.cluster.notify()
            await agent.cluster.wait_committed(agent.cluster.state.index)
        return True

    async def body_json(request: web.Request) -> Any:
        raw = await request.read()
        return json.loads(raw) if raw.strip() else {}

    # -- catalog -------------------------------------------------------------------------
    async def catalog_services(request: web.Request) -> web.Response:
        await block(request)
        return reply(agent.cluster.state.services_summary())

    async def catalog_service(request: web.Request) -> web.Response:
        await block(request)
        tags = request.query.getall("tag", [])
        return reply(agent.cluster.state.service_nodes(request.match_info["name"], tags))

    async def catalog_nodes(request: web.Request) -> web.Response:
        await block(request)
        return reply(agent.cluster.state.node_list())

    async def catalog_node(request: web.Request) -> web.Response:
        await block(request)
        return reply(agent.cluster.state.node_services(request.match_info["name"]))

    async def catalog_node_services(request: web.Request) -> web.Response:
        await block(request)
        found = agent.cluster.state.node_services(request.match_info["name"])
        if found is None:
            return reply(None)
        return reply({"Node": found["Node"], "Services": list(found["Services"].values())})

    async def catalog_datacenters(request: web.Request) -> web.Response:
        return reply([agent.datacenter])

    async def catalog_register(request: web.Request) -> web.Response:
        body = await body_json(request)
        return reply(await write(lambda s: s.register(body)))

    async def catalog_deregister(request: web.Request) -> web.Response:
        body = await body_json(request)
        return reply(await write(lambda s: s.deregister(body)))

    # -- health --------------------------------------------------------------------------
    async def health_service(request: web.Request) -> web.Response:
        await block(request)
        passing = "passing" in request.query and request.query["passing"] not in ("0", "false")
        tags = request.query.getall("tag", [])
        return reply(agent.cluster.state.health_service(request.match_info["name"],
                                                        passing=passing, tags=tags))

    async def health_state(request: web.Request) -> web.Response:
        state = request.match_info["state"]
        if state not in ("any", "passing", "warning", "critical", "maintenance"):
            return _text(400, f"Invalid state: {state}")
        await block(request)
        return reply(agent.cluster.state.checks_in_state(state))

    async def health_checks(request: web.Request) -> web.Response:
        await block(request)
        return reply(agent.cluster.state.service_checks(request.match_info["name"]))

    async def health_node(request: web.Request) -> web.Response:
        await block(request)
        return reply(agent.cluster.state.node_checks(request.match_info["name"]))

    # -- kv ------------------------------------------------------------------------------
    async def kv(request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        state = agent.cluster.state
        if request.method == "GET":
            await block(request)
            if "keys" in request.query:
                keys = state.kv_keys(key, request.query.get("separator", ""))
                return reply(keys) if keys else web.Response(status=404, headers=headers())
            entries = state.kv_get(key, recurse="recurse" in request.query)
            if not entries:
                return web.Response(status=404, headers=headers())
            if "raw" in request.query:
                value = entries[0]["Value"]
                return web.Response(body=base64.b64decode(value) if value else b"",
                                    headers=headers())
            return reply(entries)
        if request.method == "PUT":
            value = await request.read()
            flags = int(request.query.get("flags", "0"))
            return reply(await write(lambda s: s.kv_put(key, value, flags)))
        if request.method == "DELETE":
            return reply(await write(lambda s: s.kv_delete(key,
                                                           recurse="recurse" in request.query)))
        return _text(405, "method not allowed")

    # -- agent ---------------------------------------------------------------------------
    async def agent_members(request: web.Request) -> web.Response:
        return reply(agent.members())

    async def agent_self(request: web.Request) -> web.Response:
        return reply(agent.self_info())

    async def agent_service_register(request: web.Request) -> web.Response:
        body = await body_json(request)
        ok, message = await agent.register_local_service(body)
        return web.Response(status=200 if ok else 400, text="" if ok else message,
                            headers=headers())

    async def agent_service_deregister(request: web.Request) -> web.Response:
        ok, message = await agent.deregister_local_service(request.match_info["id"])
        return web.Response(status=200 if ok else 404, text="" if ok else message,
                            headers=headers())

    async def agent_services(request: web.Request) -> web.Response:
        return reply(agent.local_services())

    # -- status --------------------------------------------------------------------------
    async def status_leader(request: web.Request) -> web.Response:
        leader = agent.cluster.leader_address
        return web.json_response(f"{leader}:{agent.server_port}" if leader else "")

    async def status_peers(request: web.Request) -> web.Response:
        return web.json_response(agent.raft_peers())

    app = web.Application(middlewares=[route])
    app.add_routes([
        web.get("/v1/catalog/services", catalog_services),
        web.get("/v1/catalog/service/{name}", catalog_service),
        web.get("/v1/catalog/nodes", catalog_nodes),
        web.get("/v1/catalog/node/{name}", catalog_node),
        web.get("/v1/catalog/node-services/{name}", catalog_node_services),
        web.get("/v1/catalog/datacenters", catalog_datacenters),
        web.put("/v1/catalog/register", catalog_register),
        web.put("/v1/catalog/deregister", catalog_deregister),
        web.get("/v1/health/service/{name}", health_service),
        web.get("/v1/health/state/{state}", health_state),
        web.get("/v1/health/checks/{name}", health_checks),
        web.get("/v1/health/node/{name}", health_node),
        web.route("*", "/v1/kv/{key:.*}", kv),
        web.get("/v1/agent/members", agent_members),
        web.get("/v1/agent/self", agent_self),
        web.get("/v1/agent/services", agent_services),
        web.put("/v1/agent/service/register", agent_service_register),
        web.put("/v1/agent/service/deregister/{id}", agent_service_deregister),
        web.get("/v1/status/leader", status_leader),
        web.get("/v1/status/peers", status_peers),
    ])
    return app
