"""``meshproof/lab-echo``: a small HTTP server that tells who answered, for lab tests.

``GET /anything`` → 200 with JSON ``{cluster, namespace, pod, ip, path, headers}``;
``GET /file?path=/etc/x`` reads a file the container sees at ``/etc/x`` (through the
volume mapping) and answers its text. Listens on the pod IP, port ``args[0]`` or
``$PORT`` or 8080. It shows how a Python lab program uses its ContainerContext.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from meshproof.lab.images.context import ContainerContext

__all__ = ["run"]


def run(ctx: ContainerContext) -> int:
    port = int(ctx.argv[0]) if ctx.argv else int(ctx.env.get("PORT", "8080"))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            ctx.log.write(f"{self.address_string()} {format % args}\n")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/file":
                wanted = parse_qs(url.query).get("path", [""])[0]
                try:
                    body = ctx.path(wanted).read_bytes()
                    code = 200
                except OSError as exc:
                    body, code = f"{wanted}: {exc.strerror}\n".encode(), 404
                ctype = "text/plain"
            else:
                body = json.dumps({
                    "cluster": ctx.cluster, "namespace": ctx.namespace, "pod": ctx.pod,
                    "ip": ctx.pod_ip, "path": self.path, "headers": dict(self.headers),
                }).encode()
                code, ctype = 200, "application/json"
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((ctx.pod_ip, port), Handler)
    ctx.log.write(f"lab-echo listening on {ctx.pod_ip}:{port}\n")
    ctx.log.flush()
    server.serve_forever()
    return 0
