"""What the lab's sample apps share: where to listen, and a small threaded HTTP/1.1 server."""

from __future__ import annotations

import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from meshproof.lab.images.context import ContainerContext

__all__ = ["listen_address", "serve"]


def listen_address(ctx: ContainerContext, default_port: int) -> tuple[str, int]:
    """The pod's address and the container's port; in an injected pod the sidecar owns the
    service port, so the app moves by ``MESHPROOF_LAB_APP_PORT_OFFSET``."""
    ports = [int(p["containerPort"]) for p in ctx.container.get("ports") or []]
    port = int(ctx.env.get("PORT", ports[0] if ports else default_port))
    return ctx.pod_ip, port + int(ctx.env.get("MESHPROOF_LAB_APP_PORT_OFFSET", "0"))


def serve(ctx: ContainerContext, handler: type[BaseHTTPRequestHandler], default_port: int,
          banner: str) -> int:
    address = listen_address(ctx, default_port)
    # The handlers write the header block and the body separately; with Nagle's algorithm on,
    # a kept-alive connection (the sidecar's pool) then waits for the peer's delayed ACK
    # (~40 ms) before the body leaves. Servers the sample images run answer without that stall.
    handler.disable_nagle_algorithm = True
    server = ThreadingHTTPServer(address, handler)
    server.daemon_threads = True
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"{banner} listening on {address[0]}:{address[1]}", file=ctx.log, flush=True)
    server.serve_forever()
    server.server_close()
    return 0
