"""A loopback HTTP(S) server with known behaviour, for load-generation tests.

It answers after a fixed delay, cycles through a given list of status codes,
can answer like helloworld (``Hello version: v1, instance: x``, versions
cycled in a given order), and counts what it did, so a test can compare the
load generator's numbers with the server's own.
"""

from __future__ import annotations

import itertools
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["LoadTarget", "load_target", "refused_port"]


@dataclass
class LoadTarget:
    """What a test sees of the running server."""

    url: str
    port: int
    delay_s: float
    statuses: Sequence[int]
    versions: Sequence[str]
    started: int = 0
    """Requests whose handling began."""
    answered: Counter[int] = field(default_factory=Counter)
    """Responses fully written, by status."""
    answered_versions: Counter[str] = field(default_factory=Counter)
    hosts: Counter[str] = field(default_factory=Counter)
    """Host headers seen."""
    server_names: Counter[str] = field(default_factory=Counter)
    """TLS SNI names seen (TLS only)."""
    env_headers: Counter[str] = field(default_factory=Counter)
    """Values of the ``env`` request header (what header routing matches on); "" when absent."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def answered_total(self) -> int:
        with self.lock:
            return sum(self.answered.values())


def _handler(target: LoadTarget) -> type[BaseHTTPRequestHandler]:
    status_cycle = itertools.cycle(target.statuses)
    version_cycle = itertools.cycle(target.versions or ("",))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without it the body waits on a delayed ACK and every request gains ~40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with target.lock:
                target.started += 1
                status = next(status_cycle)
                version = next(version_cycle)
                target.hosts[self.headers.get("Host", "")] += 1
                target.env_headers[self.headers.get("env", "")] += 1
            time.sleep(target.delay_s)
            # Like helloworld, only a served request names its version.
            answered_by = version if status < 400 else ""
            text = (
                f"Hello version: {version}, instance: hw-{version}-0\n"
                if answered_by
                else "error\n"
            )
            body = text.encode()
            head = (
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                "Content-Type: text/plain\r\n\r\n"
            ).encode()
            try:
                self.wfile.write(head + body)
                self.wfile.flush()
            except OSError:
                return  # the client stopped waiting (load ended); not answered
            with target.lock:
                target.answered[status] += 1
                if answered_by:
                    target.answered_versions[answered_by] += 1

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Many users connect at once; the default backlog of 5 would refuse some.
    request_queue_size = 128


@contextmanager
def load_target(
    *,
    delay_s: float = 0.0,
    statuses: Sequence[int] = (200,),
    versions: Sequence[str] = (),
    host: str = "127.0.0.1",
    tls_cert: tuple[Path, Path] | None = None,
) -> Iterator[LoadTarget]:
    """Serve on ``host`` (a free port) until the block ends; ``tls_cert`` is (cert chain, key) PEM files."""
    target = LoadTarget(url="", port=0, delay_s=delay_s, statuses=statuses, versions=versions)
    server = _Server((host, 0), _handler(target))
    scheme = "http"
    if tls_cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls_cert[0]), str(tls_cert[1]))

        def remember_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            with target.lock:
                target.server_names[name or ""] += 1

        context.sni_callback = remember_sni
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    target.port = int(server.server_address[1])
    target.url = f"{scheme}://{host}:{target.port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def refused_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
