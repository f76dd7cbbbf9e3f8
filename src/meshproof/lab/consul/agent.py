"""One Consul server agent: its identity, members, local services and the catalog it keeps.

The leader does what Consul's leader does for servers (``leader.go``
``reconcileMember``): it registers every server as a catalog node with the
``consul`` service (port 8300) and a ``serfHealth`` check, critical when the
server has failed. The state is written to the data dir after each change, so a
restarted server (its PVC survives, as in a StatefulSet) comes back with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from meshproof.lab.consul.election import ServerCluster
from meshproof.lab.consul.state import CatalogState, RegistrationError, canonical

__all__ = ["CONSUL_VERSION", "AgentConfig", "ServerAgent"]

CONSUL_VERSION = "1.22.7"
"""The version the lab reports (clusters/versions.env CONSUL_VERSION)."""
STATE_FILE = "lab-catalog.json"


@dataclass
class AgentConfig:
    """What ``consul agent -server ...`` was started with."""

    node_name: str
    datacenter: str
    advertise: str
    bind: str
    http_port: int = 8500
    server_port: int = 8300
    serf_lan_port: int = 8301
    serf_wan_port: int = 8302
    bootstrap_expect: int = 1
    retry_join: list[str] = field(default_factory=list)
    data_dir: Path | None = None
    version: str = CONSUL_VERSION

    @property
    def node_id(self) -> str:
        """Stable per node and datacenter, as Consul keeps it in ``node-id`` in the data dir."""
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.node_name}.{self.datacenter}.lab"))


class ServerAgent:
    """The agent process's objects: config, cluster view, local services."""

    def __init__(self, config: AgentConfig, cluster: ServerCluster) -> None:
        self.config = config
        self.cluster = cluster
        self._session: aiohttp.ClientSession | None = None
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def datacenter(self) -> str:
        return self.config.datacenter

    @property
    def http_port(self) -> int:
        return self.config.http_port

    @property
    def server_port(self) -> int:
        return self.config.server_port

    @staticmethod
    def load_state(config: AgentConfig) -> tuple[CatalogState, int, bool]:
        """The state in the data dir (with the term that wrote it), or an empty one; True
        when it came from disk."""
        if config.data_dir is not None:
            path = config.data_dir / STATE_FILE
            with contextlib.suppress(OSError, ValueError, KeyError):
                data = json.loads(path.read_text())
                if data.get("datacenter") == config.datacenter:
                    return CatalogState.restore(data), int(data.get("term", 0)), True
        return CatalogState(config.datacenter), 0, False

    def forward_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=2))
        return self._session

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._persist()), loop.create_task(self._reconcile())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._session is not None:
            await self._session.close()

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def _persist(self) -> None:
        if self.config.data_dir is None:
            return
        path = self.config.data_dir / STATE_FILE
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            tmp = path.with_suffix(".tmp")
            with contextlib.suppress(OSError):
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(dict(self.cluster.state.snapshot(),
                                               term=self.cluster.state_term)))
                os.replace(tmp, path)
            await asyncio.sleep(0.1)

    # -- servers in the catalog ----------------------------------------------------------
    def _server_registration(self, name: str, address: str, alive: bool, node_id: str) -> dict[
            str, Any]:
        return {
            "ID": node_id, "Node": name, "Address": address,
            "TaggedAddresses": {"lan": address, "lan_ipv4": address, "wan": address,
                                "wan_ipv4": address},
            "NodeMeta": {"consul-network-segment": "", "consul-version": self.config.version},
            "Service": {"ID": "consul", "Service": "consul", "Port": self.config.server_port,
                        "Address": address},
            "Check": {"CheckID": "serfHealth", "Name": "Serf Health Status",
                      "Status": "passing" if alive else "critical",
                      "Output": "Agent alive and reachable" if alive else
                      "Agent not live or unreachable"},
        }

    async def _reconcile(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if not self.cluster.leader:
                continue
            now = time.monotonic()
            regs = [self._server_registration(self.config.node_name, self.config.advertise, True,
                                              self.config.node_id)]
            for peer in self.cluster.peers.values():
                if peer.ever_seen and peer.name:
                    regs.append(self._server_registration(
                        peer.name, peer.address, peer.alive(now),
                        str(uuid.uuid5(uuid.NAMESPACE_DNS,
                                       f"{peer.name}.{self.datacenter}.lab"))))
            changed = False
            for reg in regs:
                changed |= self.cluster.state.register(reg)
            if changed:
                await self.cluster.notify()

    # -- agent endpoints -----------------------------------------------------------------
    def _member(self, name: str, address: str, status: int) -> dict[str, Any]:
        c = self.config
        node_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.{c.datacenter}.lab"))
        return {
            "Name": name, "Addr": address, "Port": c.serf_lan_port,
            "Tags": {"acls": "0", "bootstrap": "0", "build": f"{c.version}:lab",
                     "dc": c.datacenter, "expect": str(c.bootstrap_expect), "ft_fs": "1",
                     "ft_si": "1", "grpc_port": "8502", "id": node_id,
                     "port": str(c.server_port), "raft_vsn": "3", "role": "consul",
                     "segment": "", "vsn": "2", "vsn_max": "3", "vsn_min": "2",
                     "wan_join_port": str(c.serf_wan_port)},
            "Status": status, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
            "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
        }

    def members(self) -> list[dict[str, Any]]:
        """``/v1/agent/members``: serf LAN members (status 1 alive, 4 failed)."""
        now = time.monotonic()
        out = [self._member(self.config.node_name, self.config.advertise, 1)]
        for peer in self.cluster.peers.values():
            if peer.ever_seen and peer.name:
                out.append(self._member(peer.name, peer.address, 1 if peer.alive(now) else 4))
        return sorted(out, key=lambda m: m["Name"])

    def raft_peers(self) -> list[str]:
        live = [self.config.advertise] + [p.address for p in self.cluster.live_peers()
                                          if p.info.get("eligible")]
        return [f"{a}:{self.config.server_port}" for a in sorted(live)]

    def self_info(self) -> dict[str, Any]:
        c = self.config
        return {
            "Config": {"Datacenter": c.datacenter, "PrimaryDatacenter": c.datacenter,
                       "NodeName": c.node_name, "NodeID": c.node_id, "Partition": "",
                       "Revision": "lab", "Server": True, "Version": c.version,
                       "BuildDate": "2026-01-01T00:00:00Z"},
            "Member": self._member(c.node_name, c.advertise, 1),
            "Stats": {"consul": {"leader": str(self.cluster.leader).lower(),
                                 "leader_addr": (f"{self.cluster.leader_address}:"
                                                 f"{c.server_port}"
                                                 if self.cluster.leader_address else ""),
                                 "server": "true",
                                 "known_datacenters": "1"},
                      "raft": {"state": "Leader" if self.cluster.leader else "Follower",
                               "term": str(self.cluster.term),
                               "last_log_index": str(self.cluster.state.index)}},
            "Meta": {"consul-network-segment": "", "consul-version": c.version},
        }

    def local_services(self) -> dict[str, Any]:
        own = self.cluster.state.services.get(self.config.node_name, {})
        return {sid: dict(CatalogState.agent_service_view(svc), Datacenter=self.datacenter)
                for sid, svc in own.items() if sid != "consul"}

    async def _catalog_write(self, path: str, body: dict[str, Any]) -> tuple[bool, str]:
        """A catalog write on behalf of this agent: applied here if leader, else forwarded."""
        if self.cluster.leader:
            state = self.cluster.state
            try:
                changed = state.register(body) if path.endswith("register") and \
                    not path.endswith("deregister") else state.deregister(body)
            except RegistrationError as exc:
                return False, str(exc)
            if changed:
                await self.cluster.notify()
                await self.cluster.wait_committed(state.index)
            return True, ""
        leader = self.cluster.leader_address
        if not leader:
            return False, "No cluster leader"
        url = f"http://{leader}:{self.config.http_port}{path}"
        try:
            async with self.forward_session().put(url, json=body) as reply:
                return reply.status == 200, await reply.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return False, f"rpc error: {exc}"

    async def register_local_service(self, body: dict[str, Any]) -> tuple[bool, str]:
        """``PUT /v1/agent/service/register``: the service on this agent's node."""
        body = canonical(body)
        name = str(body.get("Name") or "")
        if not name:
            return False, "Missing service name"
        service = {"ID": body.get("ID") or name, "Service": name, "Tags": body.get("Tags") or [],
                   "Address": body.get("Address") or "", "Meta": body.get("Meta") or {},
                   "Port": body.get("Port") or 0}
        return await self._catalog_write("/v1/catalog/register", {
            "Node": self.config.node_name, "Address": self.config.advertise,
            "SkipNodeUpdate": True, "Service": service})

    async def deregister_local_service(self, service_id: str) -> tuple[bool, str]:
        if service_id not in self.cluster.state.services.get(self.config.node_name, {}):
            return False, (f'Unknown service ID "{service_id}". Ensure that the service ID is '
                           "passed, not the service name.")
        return await self._catalog_write("/v1/catalog/deregister", {
            "Node": self.config.node_name, "ServiceID": service_id})
