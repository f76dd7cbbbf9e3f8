"""meshproof probe agent: makes requests from inside the mesh and reports what happened.

Stdlib only: it is shipped in a ConfigMap and run as ``python agent.py`` on a
public Python image, injected (its traffic then goes through the sidecar,
``HTTP_PROXY`` in the lab) and not injected (plaintext from outside the mesh).
The suite reaches it through the API server's ``pods/proxy`` subresource.

API (JSON in, JSON out):
  GET  /healthz                 200 "ok"
  GET  /info                    pod name, namespace, the proxy it uses, version
  POST /request                 {"url", "method"?, "headers"?, "body"?, "timeout"?,
                                 "count"?, "interval"?, "keep_body"?}
                                → {"results": [Attempt...], "summary": {...}}
  POST /tls                     {"host", "port", "server_name"?, "timeout"?}
                                → the peer's certificate facts (subject, SANs, issuer,
                                  notAfter, chain length) as the TLS handshake showed them

An Attempt: {"ok", "status", "latency_ms", "headers", "body", "failure", "error"} where
failure is one of "", "reset", "refused", "timeout", "tls", "dns", "protocol", "other".
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AGENT_VERSION = "1"
MAX_COUNT = 2000
MAX_BODY = 4096
MAX_TIMEOUT = 60.0


def classify(exc: BaseException) -> str:
    """The kind of failure a client sees, as curl would name it."""
    if isinstance(exc, urllib.error.URLError) and exc.reason is not None and isinstance(
        exc.reason, BaseException
    ):
        return classify(exc.reason)
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "tls"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(
        exc, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected
    ):
        return "reset"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timeout"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, http.client.HTTPException):
        return "protocol"
    if isinstance(exc, ConnectionError):
        return "reset"
    return "other"


def _opener() -> urllib.request.OpenerDirector:
    # ProxyHandler() reads HTTP_PROXY / NO_PROXY from the environment, which is how an
    # injected pod's traffic reaches its sidecar in the lab.
    return urllib.request.build_opener(urllib.request.ProxyHandler())


def attempt(spec: dict[str, Any]) -> dict[str, Any]:
    url = str(spec["url"])
    method = str(spec.get("method", "GET")).upper()
    headers = {str(k): str(v) for k, v in dict(spec.get("headers") or {}).items()}
    body = spec.get("body")
    data = body.encode() if isinstance(body, str) else None
    timeout = min(float(spec.get("timeout", 5.0)), MAX_TIMEOUT)
    keep_body = int(spec.get("keep_body", 512))
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "ok": False, "status": 0, "latency_ms": 0.0, "headers": {}, "body": "",
        "failure": "", "error": "",
    }
    try:
        with _opener().open(request, timeout=timeout) as response:
            payload = response.read(MAX_BODY)
            result.update(status=response.status, headers=dict(response.headers.items()))
    except urllib.error.HTTPError as exc:
        payload = exc.read(MAX_BODY) if exc.fp is not None else b""
        result.update(status=exc.code, headers=dict(exc.headers.items()) if exc.headers else {})
    except Exception as exc:  # every failure is data for the suite, not a crash
        payload = b""
        result.update(failure=classify(exc), error=f"{type(exc).__name__}: {exc}")
    result["latency_ms"] = round((time.perf_counter() - started) * 1000.0, 3)
    result["ok"] = result["status"] != 0
    result["body"] = payload[:keep_body].decode("utf-8", "replace")
    return result


def run_requests(spec: dict[str, Any]) -> dict[str, Any]:
    count = max(1, min(int(spec.get("count", 1)), MAX_COUNT))
    interval = max(0.0, float(spec.get("interval", 0.0)))
    results = []
    for index in range(count):
        if index and interval:
            time.sleep(interval)
        results.append(attempt(spec))
    statuses: dict[str, int] = {}
    failures: dict[str, int] = {}
    for r in results:
        if r["status"]:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
        else:
            failures[r["failure"]] = failures.get(r["failure"], 0) + 1
    return {
        "results": results,
        "summary": {"count": count, "statuses": statuses, "failures": failures},
    }


def tls_facts(spec: dict[str, Any]) -> dict[str, Any]:
    host = str(spec["host"])
    port = int(spec["port"])
    server_name = spec.get("server_name") or None
    timeout = min(float(spec.get("timeout", 5.0)), MAX_TIMEOUT)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    facts: dict[str, Any] = {"handshake": False, "failure": "", "error": ""}
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True) or b""
                cipher = tls.cipher()
                facts.update(handshake=True, version=tls.version(),
                             cipher=cipher[0] if cipher else "")
    except Exception as exc:
        facts.update(failure=classify(exc), error=f"{type(exc).__name__}: {exc}")
        return facts
    facts.update(_decode_certificate(der))
    return facts


def _decode_certificate(der: bytes) -> dict[str, Any]:
    # The stdlib decodes a certificate only from a file; the fields it returns are the
    # ones getpeercert() would give for a verified peer.
    pem = ssl.DER_cert_to_PEM_cert(der)
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
        handle.write(pem)
        path = handle.name
    try:
        decoded = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
    finally:
        os.unlink(path)
    sans = decoded.get("subjectAltName", ())
    return {
        "subject": _name(decoded.get("subject", ())),
        "issuer": _name(decoded.get("issuer", ())),
        "not_after": decoded.get("notAfter", ""),
        "not_before": decoded.get("notBefore", ""),
        "uri_sans": [v for k, v in sans if k == "URI"],
        "dns_sans": [v for k, v in sans if k == "DNS"],
        "pem": pem,
    }


def _name(rdns: Any) -> dict[str, str]:
    return {k: v for rdn in rdns for k, v in rdn}


class Handler(BaseHTTPRequestHandler):
    server_version = "meshproof-probe/" + AGENT_VERSION

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("probe: " + (format % args) + "\n")

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, "ok")
        elif self.path == "/info":
            self._reply(200, {
                "version": AGENT_VERSION,
                "pod": os.environ.get("POD_NAME", socket.gethostname()),
                "namespace": os.environ.get("POD_NAMESPACE", ""),
                "proxy": os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy") or "",
            })
        else:
            self._reply(404, {"error": f"no such path {self.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            spec = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("the body must be a JSON object")
            if self.path == "/request":
                self._reply(200, run_requests(spec))
            elif self.path == "/tls":
                self._reply(200, tls_facts(spec))
            else:
                self._reply(404, {"error": f"no such path {self.path}"})
        except (KeyError, ValueError, TypeError) as exc:
            self._reply(400, {"error": f"bad request: {exc}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="meshproof probe agent")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PROBE_PORT", "8080")))
    parser.add_argument("--address", default=os.environ.get("PROBE_ADDRESS", "0.0.0.0"))
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.address, args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"probe: listening on {args.address}:{args.port}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
