"""``mccutchen/go-httpbin``: request inspection and status/delay endpoints.

Shapes as go-httpbin v2 answers them: ``/headers`` → ``{"headers": {name: [values]}}``
(canonical names, lists), ``/get`` and ``/anything`` add ``args``, ``method``,
``origin`` and ``url``; ``/status/<code>``; ``/delay/<seconds>`` (at most 10);
``/ip``. Listens on ``PORT`` (default 8080); with ``PREFIX`` every route lives under it.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from meshproof.lab.apps.serving import serve
from meshproof.lab.images.context import ContainerContext

__all__ = ["run"]

MAX_DELAY = 10.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "go-httpbin"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, status: int, payload: object) -> None:
        data = (json.dumps(payload, indent=2) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _headers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            canonical = "-".join(part.capitalize() for part in name.split("-"))
            out.setdefault(canonical, []).append(value)
        return out

    def _request(self) -> dict[str, object]:
        url = urlsplit(self.path)
        return {
            "args": {k: v for k, v in parse_qs(url.query).items()},
            "headers": self._headers(),
            "method": self.command,
            "origin": self.client_address[0],
            "url": f"http://{self.headers.get('Host', '')}{self.path}",
        }

    prefix = ""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = urlsplit(self.path).path
        if self.prefix:
            # go-httpbin's PREFIX: every route lives under it; anything else is not found.
            if path != self.prefix and not path.startswith(self.prefix + "/"):
                self._json(404, {"status_code": 404, "error": "Not Found"})
                return
            path = path[len(self.prefix):] or "/"
        parts = [p for p in path.split("/") if p]
        if path == "/headers":
            self._json(200, {"headers": self._headers()})
        elif path in ("/get", "/anything") or path.startswith("/anything/"):
            self._json(200, self._request())
        elif path == "/ip":
            self._json(200, {"origin": self.client_address[0]})
        elif len(parts) == 2 and parts[0] == "status" and parts[1].isdigit():
            code = int(parts[1])
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif len(parts) == 2 and parts[0] == "delay":
            try:
                seconds = min(float(parts[1]), MAX_DELAY)
            except ValueError:
                self._json(400, {"error": f"invalid delay {parts[1]!r}"})
                return
            time.sleep(max(0.0, seconds))
            self._json(200, self._request())
        elif path == "/":
            self._json(200, {"service": "go-httpbin"})
        else:
            self._json(404, {"status_code": 404, "error": "Not Found"})

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_DELETE = _handle
    do_PATCH = _handle


def run(ctx: ContainerContext) -> int:
    prefix = ctx.env.get("PREFIX", "").rstrip("/")
    handler = type("PrefixedHandler", (Handler,), {"prefix": prefix}) if prefix else Handler
    return serve(ctx, handler, 8080, "go-httpbin" + (f" under {prefix}" if prefix else ""))
