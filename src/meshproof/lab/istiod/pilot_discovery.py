"""``pilot-discovery request <method> <path> [<body>]`` in the lab's istiod container.

As istio/istio ``pilot/cmd/pilot-discovery/app/request.go`` and
``pilot/pkg/request/command.go`` do it: one HTTP request to istiod's monitoring port
15014 on the pod's localhost (upstream ``127.0.0.1:15014``, 60 s timeout), the path's
leading ``/`` optional. The body is printed with a newline (``fmt.Println``) when the
status is below 400 or is 404; any other status is the error ``received unsuccessful
status code N: <body>``, which cobra prints as ``Error: ...`` on stderr before
``main`` logs it and exits -1 (255).

A lab pod's localhost is its own address (the host's loopback is shared by every pod),
so the request goes to ``$MESHPROOF_LAB_POD_IP:15014`` from that address, which is what
istiod's debug endpoints take for localhost (:meth:`..server.IstiodServer._debug`).
"""

from __future__ import annotations

import datetime
import http.client
import os
import sys
from collections.abc import Sequence

__all__ = ["MONITORING_PORT", "main", "request"]

MONITORING_PORT = 15014
TIMEOUT = 60.0


def request(method: str, path: str, body: str = "", *, host: str = "",
            port: int = MONITORING_PORT, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """One request to istiod on the pod's localhost; (status, body)."""
    host = host or os.environ.get("MESHPROOF_LAB_POD_IP") or "127.0.0.1"
    conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(host, 0))
    try:
        conn.request(method.upper(), "/" + path.lstrip("/"), body=body.encode() or None)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _fail(message: str) -> int:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(f"Error: {message}", file=sys.stderr)
    print(f"{stamp}\terror\t{message}", file=sys.stderr)
    return 255


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("Istio Pilot provides mesh-wide traffic management, security and policy "
              "capabilities in the Istio Service Mesh.\n\nUsage:\n  pilot-discovery [command]"
              "\n\nAvailable Commands:\n  discovery   Start Istio proxy discovery service.\n"
              "  request     Makes an HTTP request to Pilot metrics/debug endpoint")
        return 0
    if args[0] != "request":
        return _fail(f'unknown command "{args[0]}" for "pilot-discovery"')
    rest = [a for a in args[1:] if not a.startswith("-")]
    if len(rest) < 2:
        return _fail(f"requires at least 2 arg(s), only received {len(rest)}")
    method, path, body = rest[0], rest[1], rest[2] if len(rest) > 2 else ""
    try:
        status, payload = request(method, path, body)
    except OSError as exc:
        return _fail(f'Get "http://127.0.0.1:{MONITORING_PORT}/{path.lstrip("/")}": {exc}')
    text = payload.decode(errors="replace")
    if status > 399 and status != 404:
        return _fail(f"received unsuccessful status code {status}: {text}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
