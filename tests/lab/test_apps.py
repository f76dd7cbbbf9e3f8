"""The sample apps' lab programs, run as container processes are run: through the launcher."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.servers import free_port

pytestmark = pytest.mark.lab


@contextmanager
def container(tmp: Path, entry: str, image: str, ip: str, port: int,
              env: dict[str, str] | None = None) -> Iterator[str]:
    ctx = {
        "entry": entry, "cluster": "aws-eks", "namespace": "sample", "pod": "app-7d9-x1",
        "container": {"name": "app", "image": image, "ports": [{"containerPort": port}]},
        "argv": [], "env": env or {}, "pod_ip": ip, "host_ip": "127.0.0.1",
        "pod_dir": str(tmp), "mounts": {},
    }
    ctx_file = tmp / "ctx.json"
    ctx_file.write_text(json.dumps(ctx))
    proc = subprocess.Popen([sys.executable, "-m", "meshproof.lab.images.launch", str(ctx_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listen = port + int((env or {}).get("MESHPROOF_LAB_APP_PORT_OFFSET", "0"))
    base = f"http://{ip}:{listen}"
    deadline = time.monotonic() + 15
    try:
        while True:
            try:
                urllib.request.urlopen(base + "/nope", timeout=1)
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_helloworld_answers_with_its_image_version_and_pod(tmp_path: Path) -> None:
    port = free_port("127.0.77.1")
    with container(tmp_path, "meshproof.lab.apps.helloworld:run",
                   "docker.io/istio/examples-helloworld-v2:1.0", "127.0.77.1", port) as base:
        body = urllib.request.urlopen(base + "/hello", timeout=5).read().decode()
    assert body == "Hello version: v2, instance: app-7d9-x1\n"


def test_httpbin_echoes_headers_and_serves_status_codes(tmp_path: Path) -> None:
    port = free_port("127.0.77.2")
    env = {"MESHPROOF_LAB_APP_PORT_OFFSET": "7"}
    with container(tmp_path, "meshproof.lab.apps.httpbin:run", "mccutchen/go-httpbin:v2.15.0",
                   "127.0.77.2", port, env) as base:
        request = urllib.request.Request(base + "/headers", headers={
            "X-Forwarded-Client-Cert": "By=spiffe://cluster.local/ns/production/sa/httpbin"})
        headers = json.loads(urllib.request.urlopen(request, timeout=5).read())["headers"]
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(base + "/status/503", timeout=5)
    assert headers["X-Forwarded-Client-Cert"] == [
        "By=spiffe://cluster.local/ns/production/sa/httpbin"]
    assert caught.value.code == 503
    assert base.endswith(f":{port + 7}")
