"""exec, logs, pods/proxy and services/proxy, eviction, through a stand-in ``PodRuntime``.

The stand-in runs exec'd commands as local processes and serves logs from files;
pod addresses point at a real HTTP server on 127.0.0.1. The real kubelet
replaces it in the lab.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
from aiohttp import web
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from meshproof.lab.kube.interfaces import ExecSession, NotFound
from tests.support.kube_apiserver import RunningApiServer, running_apiserver

pytestmark = pytest.mark.lab


class LocalRuntime:
    """Runs exec'd commands on this machine; logs are files under ``root``."""

    def __init__(self, root: Path, address: str) -> None:
        self.root = root
        self.address = address

    async def exec(
        self,
        namespace: str,
        pod: str,
        container: str,
        command: Sequence[str],
        *,
        stdin: bool = False,
        tty: bool = False,
    ) -> ExecSession:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

        async def chunks(reader: asyncio.StreamReader | None) -> AsyncIterator[bytes]:
            assert reader is not None
            while data := await reader.read(4096):
                yield data

        async def write(data: bytes) -> None:
            assert proc.stdin is not None
            proc.stdin.write(data)
            await proc.stdin.drain()

        async def close() -> None:
            assert proc.stdin is not None
            proc.stdin.close()

        async def kill() -> None:
            if proc.returncode is None:
                proc.kill()
            if proc.stdin is not None and not proc.stdin.is_closing():
                proc.stdin.close()  # the transport finishes only once every pipe is closed
            await proc.wait()

        return ExecSession(
            stdout=chunks(proc.stdout),
            stderr=chunks(proc.stderr),
            write_stdin=write,
            close_stdin=close,
            wait=proc.wait,
            kill=kill,
        )

    async def attach(self, namespace: str, pod: str, container: str, *, stdin: bool = False,
                     tty: bool = False) -> ExecSession:
        """The 'main process' of every container here is an echo (cat)."""
        return await self.exec(namespace, pod, container, ["cat"], stdin=stdin, tty=tty)

    def log_path(self, namespace: str, pod: str, container: str, *, previous: bool = False) -> Path:
        path = self.root / namespace / pod / f"{container}{'.previous' if previous else ''}.log"
        if not path.exists():
            raise NotFound(f"no log for container {container} of pod {namespace}/{pod}")
        return path

    def pod_address(self, namespace: str, pod: str) -> str:
        return self.address


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """A real HTTP server standing in for a pod's application."""
    loop = asyncio.new_event_loop()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "body": body.decode(),
                "auth": request.headers.get("Authorization", ""),
            },
            headers={"X-Upstream": "yes"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    root = tmp_path_factory.mktemp("streams")
    with running_apiserver(root, runtime=LocalRuntime(root / "logs", "127.0.0.1")) as running:
        yield running


@pytest.fixture(scope="module")
def core(apiserver: RunningApiServer) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(str(apiserver.kubeconfig))
    api_core = client.CoreV1Api(api)
    api_core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "app", "labels": {"app": "echo"}},
            "spec": {
                "nodeName": "lab-node",
                "containers": [
                    {
                        "name": "main",
                        "image": "httpbin:1",
                        "ports": [{"containerPort": 8080, "name": "http"}],
                    },
                    {"name": "sidecar", "image": "proxyv2:1"},
                ],
            },
        },
    )
    yield api_core
    api.close()


def test_exec_over_websocket_with_the_python_client(core: client.CoreV1Api) -> None:
    out = stream(
        core.connect_get_namespaced_pod_exec,
        "app",
        "default",
        command=["sh", "-c", "echo hello; echo oops >&2"],
        container="main",
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
    )
    assert "hello" in out

    ws = stream(
        core.connect_get_namespaced_pod_exec,
        "app",
        "default",
        command=["sh", "-c", "cat; exit 3"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=False,
        _preload_content=False,
    )
    ws.write_stdin("piped\n")
    ws.run_forever(timeout=1)
    ws.close()  # v4 has no half-close: the server kills what the client abandons
    assert "piped" in ws.read_all()

    ws = stream(
        core.connect_get_namespaced_pod_exec,
        "app",
        "default",
        command=["sh", "-c", "echo out; echo err >&2; exit 3"],
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    ws.run_forever(timeout=5)
    assert ws.returncode == 3
    assert "out" in ws.read_stdout() and "err" in ws.read_stderr()


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_exec_v5(apiserver: RunningApiServer, core: client.CoreV1Api) -> None:
    ok = subprocess.run(
        ["kubectl", "exec", "app", "-c", "main", "--", "sh", "-c", "echo from-kubectl"],
        check=False,
        env=apiserver.kubectl_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "from-kubectl"
    piped = subprocess.run(
        ["kubectl", "exec", "-i", "app", "--", "tr", "a-z", "A-Z"],
        check=False,
        env=apiserver.kubectl_env(),
        input="shout\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert piped.stdout.strip() == "SHOUT", piped.stderr
    failed = subprocess.run(
        ["kubectl", "exec", "app", "--", "sh", "-c", "exit 7"],
        check=False,
        env=apiserver.kubectl_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert failed.returncode == 7, failed.stderr
    audit = [r for r in apiserver.requests() if r.subresource == "exec"]
    assert audit and all(r.verb == "exec" and r.name == "app" for r in audit)


def test_logs_tail_previous_and_errors(apiserver: RunningApiServer, core: client.CoreV1Api) -> None:
    logs = apiserver.kubeconfig.parent / "logs" / "default" / "app"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "main.log").write_text("one\ntwo\nthree\n")
    (logs / "main.previous.log").write_text("before the restart\n")
    assert core.read_namespaced_pod_log("app", "default", container="main") == "one\ntwo\nthree\n"
    assert (
        core.read_namespaced_pod_log("app", "default", container="main", tail_lines=2)
        == "two\nthree\n"
    )
    assert (
        core.read_namespaced_pod_log("app", "default", container="main", previous=True)
        == "before the restart\n"
    )
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("app", "default", container="sidecar")
    assert err.value.status == 404
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log("app", "default", container="nope")
    assert err.value.status == 400


def test_follow_logs_ends_when_the_pod_goes(
    apiserver: RunningApiServer, core: client.CoreV1Api
) -> None:
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "short"},
            "spec": {"nodeName": "lab-node", "containers": [{"name": "c", "image": "curl:8"}]},
        },
    )
    logs = apiserver.kubeconfig.parent / "logs" / "default" / "short"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "c.log").write_text("first\n")
    resp = core.read_namespaced_pod_log("short", "default", follow=True, _preload_content=False)
    assert resp.read(6) == b"first\n"
    with (logs / "c.log").open("a") as fh:
        fh.write("second\n")
    assert resp.read(7) == b"second\n"
    pods = apiserver.store.kind_for("v1", "Pod")
    apiserver.call(apiserver.store.finalize(pods, "short", namespace="default"))
    assert resp.read() == b""  # the stream ends


def test_pod_proxy_forwards_http(core: client.CoreV1Api, upstream: int) -> None:
    resp = core.connect_get_namespaced_pod_proxy_with_path(
        f"app:{upstream}", "default", "stats/prometheus", _preload_content=False
    )
    seen = json.loads(resp.data)
    assert seen["path"] == "/stats/prometheus"
    assert seen["auth"] == ""  # the API server's credentials never reach the pod
    assert resp.headers["X-Upstream"] == "yes"
    posted = core.connect_post_namespaced_pod_proxy_with_path(
        "app:" + str(upstream), "default", "run", _preload_content=False
    )
    assert json.loads(posted.data)["method"] == "POST"
    with pytest.raises(ApiException) as err:
        core.connect_get_namespaced_pod_proxy_with_path("app:1", "default", "x")
    assert err.value.status == 503


def test_service_proxy_picks_a_ready_endpoint(core: client.CoreV1Api, upstream: int) -> None:
    core.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "echo"},
            "spec": {
                "selector": {"app": "echo"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    with pytest.raises(ApiException) as err:
        core.connect_get_namespaced_service_proxy_with_path("echo:http", "default", "ready")
    assert err.value.status == 503
    core.create_namespaced_endpoints(
        "default",
        {
            "metadata": {"name": "echo"},
            "subsets": [
                {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "http", "port": upstream}]}
            ],
        },
    )
    resp = core.connect_get_namespaced_service_proxy_with_path(
        "echo:http", "default", "ready", _preload_content=False
    )
    assert json.loads(resp.data)["path"] == "/ready"


def test_eviction_respects_disruption_budgets(
    apiserver: RunningApiServer, core: client.CoreV1Api
) -> None:
    policy = client.PolicyV1Api(core.api_client)
    core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "evictee", "labels": {"pdb": "yes"}},
            "spec": {"containers": [{"name": "c", "image": "curl:8"}]},
        },
    )
    pdb = policy.create_namespaced_pod_disruption_budget(
        "default",
        {
            "metadata": {"name": "guard"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"pdb": "yes"}}},
        },
    )
    policy.patch_namespaced_pod_disruption_budget_status(
        "guard",
        "default",
        {
            "status": {
                "disruptionsAllowed": 0,
                "currentHealthy": 1,
                "desiredHealthy": 1,
                "expectedPods": 1,
                "observedGeneration": pdb.metadata.generation,
            }
        },
    )
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "evictee", "namespace": "default"},
    }
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("evictee", "default", eviction)
    assert err.value.status == 429
    policy.delete_namespaced_pod_disruption_budget("guard", "default")
    core.create_namespaced_pod_eviction("evictee", "default", eviction)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("evictee", "default")
    assert err.value.status == 404


def test_without_a_kubelet_exec_is_unavailable(tmp_path: Path) -> None:
    with running_apiserver(tmp_path, cluster="gcp-gke") as bare:
        api = config.new_client_from_config(str(bare.kubeconfig))
        bare_core = client.CoreV1Api(api)
        bare_core.create_namespaced_pod(
            "default",
            {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "curl:8"}]}},
        )
        with pytest.raises(ApiException) as err:
            bare_core.read_namespaced_pod_log("p", "default")
        assert err.value.status == 503
        assert "gcp-gke" in json.loads(err.value.body)["message"]
        api.close()


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_logs_and_describe_events(apiserver: RunningApiServer,
                                          core: client.CoreV1Api) -> None:
    logs = apiserver.kubeconfig.parent / "logs" / "default" / "app"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "sidecar.log").write_text("alpha\nbeta\ngamma\n")

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", *args], check=False, env=apiserver.kubectl_env(),
                              capture_output=True, text=True, timeout=30)

    tail = kubectl("logs", "app", "-c", "sidecar", "--tail=2")
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout == "beta\ngamma\n"
    pod = core.api_client.sanitize_for_serialization(core.read_namespaced_pod("app", "default"))
    apiserver.call(apiserver.store.record_event(pod, reason="Unhealthy", type_="Warning",
                                                message="Readiness probe failed"))
    described = kubectl("describe", "pod", "app")
    assert described.returncode == 0, described.stderr
    assert "Warning  Unhealthy" in described.stdout
    assert "Readiness probe failed" in described.stdout
    events = kubectl("get", "events", "--field-selector", "reason=Unhealthy")
    assert "pod/app" in events.stdout and "Warning" in events.stdout


def test_attach_streams_the_main_process(core: client.CoreV1Api) -> None:
    ws = stream(core.connect_get_namespaced_pod_attach, "app", "default", container="main",
                stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False)
    ws.write_stdin("echoed\n")
    ws.run_forever(timeout=1)
    assert "echoed" in ws.read_stdout()
    ws.close()
