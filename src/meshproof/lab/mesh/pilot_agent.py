"""``pilot-agent request GET <path>``: reach the proxy's 127.0.0.1-only admin from inside the pod.

Istio's admin port is not reachable through ``pods/proxy``; operators run
``kubectl exec <pod> -c istio-proxy -- pilot-agent request GET stats``. The
lab's admin listens on 127.0.0.1 at the port written to ``<pod dir>/admin.port``;
``write_pilot_agent_script`` puts an executable ``pilot-agent`` in
``<pod dir>/bin`` that runs this module with the pod directory baked in.
"""

from __future__ import annotations

import argparse
import http.client
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["admin_request", "main", "write_pilot_agent_script"]

_ADMIN_PORT_FILE = "admin.port"  # same name as proxy.ADMIN_PORT_FILE; kept import-light


ADMIN_PORT = 15000
ALLOWED_PORTS = (15000, 15004, 15020, 15021)
"""``pilot-agent request --debug-port``'s allowed list (istio/istio
``pilot/cmd/pilot-agent/app/request.go``)."""


def admin_request(
    pod_dir: Path, method: str, path: str, *, timeout: float = 10.0, port: int = ADMIN_PORT,
    body: str = ""
) -> tuple[int, bytes]:
    """Send one request to the proxy whose pod directory is ``pod_dir``: Envoy's admin by
    default, or one of pilot-agent's own ports (they listen on the pod's IP in the lab)."""
    host = "127.0.0.1"
    if port == ADMIN_PORT:
        try:
            port = int((pod_dir / _ADMIN_PORT_FILE).read_text().strip())
        except (OSError, ValueError) as exc:
            raise OSError(
                f"no proxy admin port recorded in {pod_dir / _ADMIN_PORT_FILE}: {exc}"
            ) from exc
    else:
        host = os.environ.get("INSTANCE_IP") or host
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method.upper(), "/" + path.lstrip("/"), body=body or None)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pilot-agent")
    parser.add_argument("--pod-dir", default=os.environ.get("MESHPROOF_POD_DIR", "."))
    sub = parser.add_subparsers(dest="command", required=True)
    req = sub.add_parser("request", help="send a request to the local Envoy admin")
    req.add_argument("--debug-port", type=int, default=ADMIN_PORT)
    req.add_argument("method")
    req.add_argument("path")
    req.add_argument("body", nargs="?", default="")
    args = parser.parse_args(argv)
    if args.debug_port not in ALLOWED_PORTS:
        print(f"Error: debug port {args.debug_port} is not in allowed list "
              f"{list(ALLOWED_PORTS)}", file=sys.stderr)
        return 1
    try:
        status, body = admin_request(Path(args.pod_dir), args.method, args.path,
                                     port=args.debug_port, body=args.body)
    except OSError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    if status >= 400:
        print(f"Error: admin answered {status}", file=sys.stderr)
        return 1
    return 0


def write_pilot_agent_script(pod_dir: Path, *, python: str = sys.executable) -> Path:
    """Write ``<pod dir>/bin/pilot-agent`` and return its path."""
    bindir = pod_dir / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "pilot-agent"
    script.write_text(
        f'#!/bin/sh\nexec "{python}" -m meshproof.lab.mesh.pilot_agent --pod-dir "{pod_dir}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


if __name__ == "__main__":
    raise SystemExit(main())
