"""Tiny loopback servers with known behaviour, for tests of clients that must classify failures."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["free_port", "http_server", "resetting_server", "silent_server"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class _Echo(BaseHTTPRequestHandler):
    """GET /status/<code> answers that code; anything else 200 with the request line."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        code = 200
        if self.path.startswith("/status/"):
            code = int(self.path.rsplit("/", 1)[1])
        body = f"{self.command} {self.path}\n".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Seen-Host", self.headers.get("Host", ""))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def http_server(host: str = "127.0.0.1") -> Iterator[int]:
    server = ThreadingHTTPServer((host, 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def _accepting(handle: object, host: str) -> Iterator[int]:
    listener = socket.socket()
    listener.bind((host, 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            handle(conn, held)  # type: ignore[operator]

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        listener.close()


def _reset(conn: socket.socket, held: list[socket.socket]) -> None:
    # SO_LINGER with a zero timeout makes close() send RST: what a STRICT sidecar does
    # to a plaintext client.
    conn.recv(1024)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _hold(conn: socket.socket, held: list[socket.socket]) -> None:
    held.append(conn)


@contextmanager
def resetting_server(host: str = "127.0.0.1") -> Iterator[int]:
    """Accepts, reads the request, then resets the connection."""
    with _accepting(_reset, host) as port:
        yield port


@contextmanager
def silent_server(host: str = "127.0.0.1") -> Iterator[int]:
    """Accepts and never answers."""
    with _accepting(_hold, host) as port:
        yield port
