"""The probe agent, run as a real process, classifies what a client in the mesh sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import meshproof.probe.agent as agent_module
from tests.support.servers import free_port, http_server, resetting_server, silent_server

AGENT = Path(agent_module.__file__)


@pytest.fixture(scope="module")
def agent() -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    proc = subprocess.Popen(
        [sys.executable, "-I", str(AGENT), "--port", str(port), "--address", "127.0.0.1"],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield base
    proc.terminate()
    proc.wait(timeout=5)


def ask(base: str, path: str, spec: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        base + path, data=json.dumps(spec).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def test_statuses_are_reported_with_latency_and_headers(agent: str) -> None:
    with http_server() as port:
        out = ask(agent, "/request", {"url": f"http://127.0.0.1:{port}/status/503", "count": 3})
    assert out["summary"] == {"count": 3, "statuses": {"503": 3}, "failures": {}}
    first = out["results"][0]
    assert first["ok"] is True and first["failure"] == ""
    assert first["latency_ms"] > 0
    assert first["headers"]["X-Seen-Host"] == f"127.0.0.1:{port}"


def test_refused_reset_and_timeout_are_told_apart(agent: str) -> None:
    closed = free_port()
    refused = ask(agent, "/request", {"url": f"http://127.0.0.1:{closed}/"})
    with resetting_server() as port:
        reset = ask(agent, "/request", {"url": f"http://127.0.0.1:{port}/"})
    with silent_server() as port:
        timeout = ask(agent, "/request", {"url": f"http://127.0.0.1:{port}/", "timeout": 0.3})
    assert [r["results"][0]["failure"] for r in (refused, reset, timeout)] == [
        "refused", "reset", "timeout",
    ]
    assert all(r["results"][0]["status"] == 0 for r in (refused, reset, timeout))


def test_bad_request_is_a_400_not_a_crash(agent: str) -> None:
    request = urllib.request.Request(agent + "/request", data=b"[1,2]", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert ask(agent, "/request", {"url": "http://127.0.0.1:1/", "count": 1})["summary"]


def test_traffic_goes_through_the_proxy_named_in_the_environment() -> None:
    with http_server() as proxy_port:
        env = dict(os.environ, HTTP_PROXY=f"http://127.0.0.1:{proxy_port}", NO_PROXY="")
        code = (
            "import json, meshproof.probe.agent as a;"
            "print(json.dumps(a.attempt({'url': 'http://helloworld.sample:5000/hello'})))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=20,
            check=True,
        )
    result = json.loads(out.stdout)
    # The echo server answers with the request line it got: an absolute-form URL means
    # the request was sent to the proxy, as an injected pod's request is sent to its sidecar.
    assert result["status"] == 200
    assert result["body"] == "GET http://helloworld.sample:5000/hello\n"
