"""A kube-proxy for the lab: a TCP listener at each Service's clusterIP:port.

Connections go round-robin to the ready endpoints, so ``curl http://<clusterIP>:<port>``
works from the host and from pods. One asyncio server per Service port; a port
with no ready endpoint refuses new connections by closing them (a real cluster's
kube-proxy rejects them with ICMP, the client sees a reset either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import struct

__all__ = ["ServiceProxy"]

log = logging.getLogger(__name__)
Backends = list[tuple[str, int]]
_Key = tuple[str, str]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: a reset on one side reaches the other, as through iptables DNAT."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionResetError:
        _reset(writer)
        return
    except (ConnectionError, OSError):
        pass
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()


class _Listener:
    def __init__(self, ip: str, port: int) -> None:
        self.ip, self.port = ip, port
        self.backends: Backends = []
        self._rr = itertools.count()
        self.server: asyncio.base_events.Server | None = None
        self.conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.ip, self.port,
                                                 reuse_address=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.conns.add(task)
        try:
            backends = list(self.backends)
            for _ in range(len(backends)):
                ip, port = backends[next(self._rr) % len(backends)]
                try:
                    up_reader, up_writer = await asyncio.wait_for(
                        asyncio.open_connection(ip, port), 5)
                except (TimeoutError, OSError):
                    continue
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
                up_writer.close()
                break
        finally:
            writer.close()
            if task is not None:
                self.conns.discard(task)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for t in list(self.conns):
            t.cancel()


class ServiceProxy:
    """The listeners of one cluster, keyed by Service."""

    def __init__(self) -> None:
        self._listeners: dict[_Key, dict[int, _Listener]] = {}
        self._refused: set[tuple[str, int]] = set()  # logged once, retried on every update

    async def update(self, key: _Key, cluster_ip: str, ports: dict[int, Backends]) -> None:
        if not cluster_ip or cluster_ip == "None":
            await self.remove(key)
            return
        current = self._listeners.setdefault(key, {})
        for port in list(current):
            if port not in ports or current[port].ip != cluster_ip:
                await current.pop(port).close()
        for port, backends in ports.items():
            listener = current.get(port)
            if listener is None:
                listener = _Listener(cluster_ip, port)
                try:
                    await listener.start()
                except OSError as exc:
                    if (cluster_ip, port) not in self._refused:
                        self._refused.add((cluster_ip, port))
                        log.warning("service %s/%s: cannot listen on %s:%d (%s); its clusterIP "
                                    "is not served", key[0], key[1], cluster_ip, port, exc)
                    continue
                self._refused.discard((cluster_ip, port))
                current[port] = listener
            listener.backends = backends

    async def remove(self, key: _Key) -> None:
        for listener in self._listeners.pop(key, {}).values():
            await listener.close()

    async def close(self) -> None:
        for key in list(self._listeners):
            await self.remove(key)
