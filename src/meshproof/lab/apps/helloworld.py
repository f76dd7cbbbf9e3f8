"""``istio/examples-helloworld-v1|v2``: ``GET /hello`` answers with its version and instance.

Output as istio/istio ``samples/helloworld/src/app.py``:
``Hello version: v1, instance: <pod name>``; the version is baked into the
image (``SERVICE_VERSION``), so it is read from the image name here.
"""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler

from meshproof.lab.apps.serving import serve
from meshproof.lab.images.context import ContainerContext

__all__ = ["run"]


def _version(image: str) -> str:
    match = re.search(r"helloworld-(v\d+)", image)
    return match.group(1) if match else "v1"


def run(ctx: ContainerContext) -> int:
    version = ctx.env.get("SERVICE_VERSION") or _version(str(ctx.container.get("image", "")))
    instance = ctx.pod

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "Werkzeug/3.0.3 Python/3.12"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/hello":
                self._send(200, f"Hello version: {version}, instance: {instance}\n")
            elif path == "/health":
                self._send(200, "Helloworld is healthy")
            else:
                self._send(404, "Not Found")

    return serve(ctx, Handler, 5000, f"helloworld {version}")
