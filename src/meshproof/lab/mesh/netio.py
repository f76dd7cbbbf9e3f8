"""Sockets below the HTTP layer: listeners that can peek, reset, wrap in TLS, and relay.

A listener hands over accepted sockets before anything has read from them, so
the inbound side can look at the first byte (TLS or plaintext) and the
east-west gateway at the whole ClientHello (its SNI) and still pass every byte
on. A refused connection is reset (SO_LINGER 0 → RST), as Envoy does when no
filter chain matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import struct
import sys
import time
import weakref
from collections.abc import Awaitable, Callable

from meshproof.errors import LabError
from meshproof.lab.mesh.http1 import HttpParseError, Request, Response, read_request
from meshproof.lab.mesh.tls import client_hello_complete

__all__ = [
    "HttpServer",
    "RawListener",
    "peek",
    "peek_client_hello",
    "relay",
    "reset",
    "sock_addr",
    "wrap",
]

_owned_by_transport: weakref.WeakSet[socket.socket] = weakref.WeakSet()

SocketHandler = Callable[[socket.socket], Awaitable[None]]
HttpHandler = Callable[[Request, asyncio.StreamWriter], Awaitable[Response]]


class RawListener:
    """Accepts on ``host:port`` and runs ``handler(sock)`` per connection, each in its own task."""

    def __init__(self, host: str, port: int, handler: SocketHandler, *, what: str) -> None:
        self.host, self.port, self.what = host, port, what
        self._handler = handler
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._conns: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise LabError(
                f"cannot listen on {self.host}:{self.port} for {self.what}: {exc}"
            ) from exc
        sock.listen(512)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def _accept_loop(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError:
                await asyncio.sleep(0.05)  # e.g. EMFILE; keep serving once it clears
                continue
            conn.setblocking(False)
            task = loop.create_task(self._run(conn))
            self._conns.add(task)
            task.add_done_callback(self._conns.discard)

    async def _run(self, conn: socket.socket) -> None:
        try:
            await self._handler(conn)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, HttpParseError):
            pass  # the peer went away; the handler has counted what it needed to
        except Exception as exc:  # one bad connection must not go unnoticed
            sys.stderr.write(f"proxy: {self.what} on {self.host}:{self.port}: {exc!r}\n")
        finally:
            # A socket handed to a transport is the transport's to close: closing its fd here
            # would leave the transport's reader registered on a number the next accept reuses.
            if conn not in _owned_by_transport:
                with contextlib.suppress(OSError):
                    conn.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sock is not None:
            self._sock.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)


async def _readable(sock: socket.socket, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(sock.fileno(), ready)
    try:
        await asyncio.wait_for(fut, timeout)
    finally:
        loop.remove_reader(sock.fileno())


async def peek(sock: socket.socket, n: int, *, timeout: float) -> bytes:
    """Up to ``n`` bytes from the socket without consuming them (b"" when the peer closed)."""
    await _readable(sock, timeout)
    try:
        return sock.recv(n, socket.MSG_PEEK)
    except BlockingIOError:
        return await peek(sock, n, timeout=timeout)


async def peek_client_hello(sock: socket.socket, *, timeout: float) -> bytes:
    """The bytes of a whole ClientHello (or whatever arrived, if it is not TLS), unconsumed."""
    deadline = time.monotonic() + timeout
    size = 0
    while True:
        data = await peek(sock, 16384, timeout=max(0.01, deadline - time.monotonic()))
        if not data or client_hello_complete(data) or len(data) >= 16384:
            return data
        if len(data) == size:
            if time.monotonic() > deadline:
                return data
            await asyncio.sleep(0.002)  # level-triggered readiness: wait for more to arrive
        size = len(data)


def sock_addr(addr: tuple[str, int] | object) -> str:
    """``ip:port`` of a socket address tuple."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)


def reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER on, timeout 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def wrap(
    sock: socket.socket, *, ssl_ctx: ssl.SSLContext | None = None, handshake_timeout: float = 10.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over an accepted socket, doing the server side of TLS when ``ssl_ctx`` is given."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    protocol = asyncio.StreamReaderProtocol(reader)
    _owned_by_transport.add(sock)
    try:
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol,
            sock,
            ssl=ssl_ctx,
            ssl_handshake_timeout=handshake_timeout if ssl_ctx else None,
        )
    except BaseException:
        # The aborted transport has already stopped watching the fd; close it now.
        with contextlib.suppress(OSError):
            sock.close()
        raise
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def relay(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    *,
    delay_ms: Callable[[], tuple[float, float] | None] | None = None,
) -> tuple[int, int]:
    """Copy bytes both ways until both sides are done; returns (bytes a→b, bytes b→a).

    With ``delay_ms`` each chunk is delivered a uniform random delay later, in
    order, in each direction: latency, not a bandwidth limit. ``delay_ms`` is asked
    for each chunk, so a network whose latency changes changes it for connections
    already open too, as a real WAN does.
    """

    async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> int:
        total = 0
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            while (item := await queue.get()) is not None:
                at, data = item
                wait = at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()
            with contextlib.suppress(OSError, RuntimeError):
                if dst.can_write_eof():
                    dst.write_eof()

        sender = asyncio.get_running_loop().create_task(deliver())
        last = 0.0
        try:
            while data := await src.read(65536):
                total += len(data)
                bounds = delay_ms() if delay_ms is not None else None
                if bounds is None:
                    at = 0.0
                else:
                    at = max(time.monotonic() + random.uniform(*bounds) / 1000.0, last)
                    last = at
                queue.put_nowait((at, data))
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            sender.cancel()
            raise
        queue.put_nowait(None)
        try:
            await sender
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            sender.cancel()
            raise
        return total

    try:
        up, down = await asyncio.gather(pump(a[0], b[1]), pump(b[0], a[1]))
    finally:
        for _, w in (a, b):
            w.close()
    return up, down


class HttpServer:
    """A small keep-alive HTTP/1.1 server for admin, health and metrics ports."""

    def __init__(self, host: str, port: int, handler: HttpHandler, *, what: str) -> None:
        self.host, self.port, self.what = host, port, what
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, reuse_address=True
            )
        except OSError as exc:
            raise LabError(
                f"cannot listen on {self.host}:{self.port} for {self.what}: {exc}"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while (req := await read_request(reader, writer)) is not None:
                resp = await self._handler(req, writer)
                writer.write(resp.encode(head_only=req.method == "HEAD"))
                await writer.drain()
                if not req.keep_alive:
                    break
        except (HttpParseError, ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # Keep-alive clients (scrapers, probes) would otherwise hold their connections open.
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
