"""The Consul servers of one datacenter agreeing on a leader and sharing the catalog.

Not Raft, but what the suite can observe of it: one leader at a time, a new one
within seconds after the leader dies, and no catalog lost on the way.

- Each server polls its peers' server port (8300) every ``POLL`` seconds; a peer
  unseen for ``DEAD_AFTER`` seconds is failed.
- A leader stays leader while alive (no failback). When no live peer claims
  leadership, the eligible server with the most recent state (then the lowest
  ordinal) campaigns in a new term and leads once a quorum voted for it; each
  server votes once per term, never for a server less up to date than itself, and
  not while it sees a live leader. A live leader with a higher term makes any
  other claimant step down. "Most recent" compares the term of the
  leader that wrote the state first, then the index (Raft's last log term and
  index), so a server that led briefly with a split vote cannot win with its own,
  divergent history.
- Followers replicate the leader's full state by long-polling it, each poll
  carrying the index they hold (their acknowledgement). A write is answered once a
  quorum (``bootstrap_expect // 2 + 1`` servers, the leader included) holds it, or
  after ``COMMIT_WAIT``, so that an acknowledged write survives the leader's death.
- A server that (re)starts is eligible only once it has copied the live leader's
  state, or, when nobody leads, once ``bootstrap_expect`` servers are up, it has
  state on disk, or it has followed a leader and a quorum is still up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from meshproof.lab.consul.state import CatalogState

__all__ = ["Peer", "ServerCluster", "ordinal_of"]

POLL = 0.25
DEAD_AFTER = 1.0
REPLICATE_WAIT = 5.0
COMMIT_WAIT = 2.0


def ordinal_of(name: str) -> int:
    """``consul-server-2`` → 2 (names without an ordinal sort last)."""
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 1 << 20


@dataclass
class Peer:
    """Another server, as last seen."""

    address: str
    name: str = ""
    last_seen: float = 0.0
    ever_seen: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def alive(self, now: float) -> bool:
        return self.ever_seen and now - self.last_seen < DEAD_AFTER


class ServerCluster:
    """This server's view of its datacenter's servers, and the catalog they share."""

    def __init__(self, *, name: str, address: str, server_port: int, state: CatalogState,
                 peers: Callable[[], Awaitable[list[str]]], bootstrap_expect: int,
                 restored: bool, on_change: Callable[[], None],
                 log: Callable[[str], None]) -> None:
        self.name = name
        self.address = address
        self.server_port = server_port
        self.state = state
        self._peer_addresses = peers
        self.bootstrap_expect = max(1, bootstrap_expect)
        self.restored = restored
        self.on_change = on_change
        self.log = log
        self.peers: dict[str, Peer] = {}
        self.leader = False
        self.leader_address = ""
        self.term = 0
        self.state_term = 0
        """The term of the leader whose state this server holds."""
        self.eligible = False
        self.last_contact = time.monotonic()
        self.changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self._replicating_from = ""
        self._followed = False
        self.voted: dict[int, str] = {}
        """Term → the server this one voted for in it."""
        self.acks: dict[str, int] = {}
        """Follower address → the index it last said it holds."""

    @property
    def quorum(self) -> int:
        return self.bootstrap_expect // 2 + 1

    async def wait_committed(self, index: int) -> bool:
        """Wait until a quorum holds ``index`` (True), or ``COMMIT_WAIT`` passed (False)."""
        deadline = time.monotonic() + COMMIT_WAIT
        async with self.changed:
            while 1 + sum(1 for i in self.acks.values() if i >= index) < self.quorum:
                left = deadline - time.monotonic()
                if left <= 0 or not self.leader:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), left)
        return True

    # -- state changes -------------------------------------------------------------------
    async def notify(self) -> None:
        """Wake blocking queries and replicas after the state changed."""
        async with self.changed:
            self.changed.notify_all()
        self.on_change()

    async def wait_for_index(self, index: int, timeout: float) -> None:
        """Return when the state's index passes ``index`` or ``timeout`` runs out."""
        deadline = time.monotonic() + timeout
        async with self.changed:
            while self.state.index <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), left)

    def replace_state(self, data: dict[str, Any]) -> None:
        self.state = CatalogState.restore(data)

    # -- the server port -----------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/lab/consul/status", self._status),
                web.get("/lab/consul/snapshot", self._snapshot),
                web.get("/lab/consul/vote", self._vote)]

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "leader": self.leader,
                "term": self.term, "eligible": self.eligible, "index": self.state.index,
                "state_term": self.state_term, "datacenter": self.state.datacenter}

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def _vote(self, request: web.Request) -> web.Response:
        """Raft's RequestVote: one vote per term, only for a candidate at least as up to date,
        and none while this server follows (or is) a live leader."""
        term = int(request.query["term"])
        name = request.query["name"]
        theirs = (int(request.query.get("state_term", 0)), int(request.query.get("index", 0)))
        if term < self.term or (self.leader_address and self.leader_address != self.address
                                and any(p.address == self.leader_address
                                        for p in self.live_peers())):
            return web.json_response({"granted": False, "term": self.term})
        if self.leader and term > self.term:
            self.log(f"[INFO]  agent.server: stepping down: {name} campaigns in term {term}")
            self.leader = False
            self.leader_address = ""
            self.eligible = False
        self.term = max(self.term, term)
        if self.leader or self.voted.get(term, name) != name or \
                theirs < (self.state_term, self.state.index):
            return web.json_response({"granted": False, "term": self.term})
        self.voted[term] = name
        return web.json_response({"granted": True, "term": self.term})

    async def _snapshot(self, request: web.Request) -> web.Response:
        if not self.leader:
            return web.json_response({"error": "not the leader"}, status=409)
        index = int(request.query.get("index", "0"))
        if request.remote:
            self.acks[request.remote] = index
            async with self.changed:
                self.changed.notify_all()
        await self.wait_for_index(index, float(request.query.get("wait", REPLICATE_WAIT)))
        return web.json_response({"term": self.term, "state": self.state.snapshot()})

    # -- loops ---------------------------------------------------------------------------
    def start(self) -> None:
        self._started = time.monotonic()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._elect()), loop.create_task(self._replicate())]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def live_peers(self) -> list[Peer]:
        now = time.monotonic()
        return [p for p in self.peers.values() if p.alive(now)]

    async def _poll(self, session: aiohttp.ClientSession) -> None:
        addresses = [a for a in await self._peer_addresses() if a != self.address]
        for a in addresses:
            self.peers.setdefault(a, Peer(a))

        async def one(peer: Peer) -> None:
            url = f"http://{peer.address}:{self.server_port}/lab/consul/status"
            try:
                async with session.get(url) as reply:
                    if reply.status == 200:
                        peer.info = await reply.json()
                        peer.name = str(peer.info.get("name", ""))
                        peer.last_seen = time.monotonic()
                        peer.ever_seen = True
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                return

        await asyncio.gather(*(one(p) for p in self.peers.values()))

    async def _elect(self) -> None:
        timeout = aiohttp.ClientTimeout(total=POLL * 2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    await self._poll(session)
                    await self._decide()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the loop must outlive one bad round
                    self.log(f"[ERROR] agent.server: election round failed: {exc}")
                await asyncio.sleep(POLL)

    async def _decide(self) -> None:
        live = self.live_peers()
        claims = [p for p in live if p.info.get("leader") and p.info.get("eligible")]
        best = max(claims, key=lambda p: (int(p.info.get("term", 0)), -ordinal_of(p.name)),
                   default=None)
        if self.leader:
            if best is not None and (int(best.info["term"]), -ordinal_of(best.name)) > (
                    self.term, -ordinal_of(self.name)):
                self.log(f"[INFO]  agent.server: stepping down: {best.name} leads term "
                         f"{best.info['term']}")
                self.leader = False
                self.leader_address = best.address
                self.eligible = False
            else:
                self.last_contact = time.monotonic()
            return
        if best is not None:
            self._followed = True
            if self.leader_address != best.address:
                self.log(f"[INFO]  agent.server: New leader elected: payload={best.name}")
            self.leader_address = best.address
            self.term = max(self.term, int(best.info.get("term", 0)))
            return
        self.leader_address = ""
        up = len(live) + 1
        if not self.eligible and (self.restored or up >= self.bootstrap_expect or (
                self._followed and up >= self.quorum)):
            self.eligible = True
        if not self.eligible:
            return
        candidates = [(int(p.info.get("state_term", 0)), int(p.info.get("index", 0)),
                       -ordinal_of(p.name)) for p in live if p.info.get("eligible")]
        mine = (self.state_term, self.state.index, -ordinal_of(self.name))
        if all(mine >= c for c in candidates):
            await self._campaign(live)

    async def _campaign(self, live: list[Peer]) -> None:
        """Ask the live servers for their votes in a new term; lead with a quorum of them."""
        term = max([self.term] + [int(p.info.get("term", 0)) for p in live]) + 1
        self.term = term
        self.voted[term] = self.name
        votes = 1
        timeout = aiohttp.ClientTimeout(total=POLL * 2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for peer in live:
                url = (f"http://{peer.address}:{self.server_port}/lab/consul/vote?term={term}"
                       f"&name={self.name}&state_term={self.state_term}"
                       f"&index={self.state.index}")
                try:
                    async with session.get(url) as reply:
                        granted = reply.status == 200 and (await reply.json()).get("granted")
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                    granted = False
                votes += 1 if granted else 0
        if votes < self.quorum or self.term != term or self.leader_address:
            return
        self.state_term = self.term
        self.acks.clear()  # acknowledgements of another leader's history count for nothing
        self.leader = True
        self.leader_address = self.address
        self.last_contact = time.monotonic()
        self.log(f"[INFO]  agent.server.raft: entering leader state: leader=\"Node at "
                 f"{self.address}:{self.server_port} [Leader]\" term={self.term}")
        await self.notify()

    async def _replicate(self) -> None:
        timeout = aiohttp.ClientTimeout(total=REPLICATE_WAIT + 5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                source = self.leader_address
                if self.leader or not source:
                    await asyncio.sleep(POLL)
                    continue
                since = self.state.index if self._replicating_from == source else 0
                url = (f"http://{source}:{self.server_port}/lab/consul/snapshot"
                       f"?index={since}&wait={REPLICATE_WAIT}")
                try:
                    async with session.get(url) as reply:
                        if reply.status != 200:
                            await asyncio.sleep(POLL)
                            continue
                        data = await reply.json()
                except asyncio.CancelledError:
                    raise
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                    await asyncio.sleep(POLL)
                    continue
                if self.leader or self.leader_address != source:
                    continue
                self.replace_state(data["state"])
                self.state_term = int(data.get("term", 0))
                self._replicating_from = source
                self.last_contact = time.monotonic()
                if not self.eligible:
                    self.log(f"[INFO]  agent.server: caught up with leader at {source} "
                             f"(index {self.state.index})")
                self.eligible = True
                await self.notify()
