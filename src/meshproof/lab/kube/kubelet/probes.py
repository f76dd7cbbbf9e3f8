"""One run of a readiness / liveness / startup probe, as the kubelet makes it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["ProbeTiming", "resolve_port", "run_probe"]

# The lab probes at most this often, so state changes show up within seconds.
MAX_PERIOD = 2.0


class ProbeTiming:
    """The probe's timing fields with Kubernetes' defaults (period 10 s capped to MAX_PERIOD)."""

    def __init__(self, probe: dict[str, Any]) -> None:
        self.initial_delay = float(probe.get("initialDelaySeconds", 0))
        self.period = min(float(probe.get("periodSeconds", 10)), MAX_PERIOD)
        self.timeout = float(probe.get("timeoutSeconds", 1))
        self.success_threshold = int(probe.get("successThreshold", 1))
        self.failure_threshold = int(probe.get("failureThreshold", 3))


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    """A probe / targetPort value: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a port of container {container.get('name')!r}")


async def _http_get(host: str, port: int, path: str, headers: Sequence[dict[str, str]],
                    scheme: str) -> tuple[bool, str]:
    ssl_ctx = None
    if scheme.upper() == "HTTPS":
        import ssl

        # The kubelet does not verify probe certificates either.
        ssl_ctx = ssl.create_default_context()
        ssl_ctx.check_hostname = False
        ssl_ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_ctx)
    try:
        lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {host}:{port}",
                 "User-Agent: kube-probe/1.36", "Accept: */*", "Connection: close"]
        lines += [f"{h['name']}: {h['value']}" for h in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.split()
        code = int(parts[1]) if len(parts) > 1 else 0
        return 200 <= code < 400, f"HTTP probe failed with statuscode: {code}"
    finally:
        writer.close()


async def run_probe(
    probe: dict[str, Any],
    *,
    host: str,
    container: dict[str, Any],
    exec_in_container: Callable[[Sequence[str], float], Awaitable[int]],
) -> tuple[bool, str]:
    """(success, why not) for one run; timeouts and refused connections are failures.
    Messages follow the kubelet's (kubernetes/kubernetes ``pkg/kubelet/prober/prober.go``)."""
    timeout = ProbeTiming(probe).timeout
    where = ""
    try:
        if "httpGet" in probe:
            h = probe["httpGet"]
            port = resolve_port(h.get("port"), container)
            scheme = str(h.get("scheme", "HTTP"))
            target = h.get("host") or host
            where = f'Get "{scheme.lower()}://{target}:{port}{h.get("path", "/")}"'
            return await asyncio.wait_for(
                _http_get(target, port, str(h.get("path", "/")), h.get("httpHeaders") or [],
                          scheme), timeout)
        if "tcpSocket" in probe or "grpc" in probe:
            # No gRPC health client in the lab: a listening port counts as serving.
            t = probe.get("tcpSocket") or probe["grpc"]
            port = resolve_port(t.get("port"), container)
            where = f"dial tcp {t.get('host') or host}:{port}"
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(t.get("host") or host, port), timeout)
            writer.close()
            return True, ""
        if "exec" in probe:
            code = await exec_in_container(probe["exec"].get("command") or [], timeout)
            return code == 0, f"command exited with {code}"
    except TimeoutError:
        return False, f"{where}: context deadline exceeded (timeout {timeout:g}s)"
    except ConnectionRefusedError:
        return False, f"{where}: connect: connection refused"
    except (OSError, ValueError) as exc:
        return False, f"{where}: {exc}"
    return True, ""
