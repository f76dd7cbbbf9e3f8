"""The suite reads istiod's sync state by exec, as a real cluster allows.

istio/istio ``pilot/pkg/xds/debug.go`` wraps ``/debug/syncz`` in
``allowAuthenticatedOrLocalhost`` (since PR #32903) and the API server deletes
``Authorization`` before proxying (k8s.io/apiserver ``endpoints/filters/authentication.go``):
on a real cluster ``pods/proxy`` to istiod:15014/debug/syncz is 401. ``pilot-discovery
request GET /debug/syncz`` in the istiod pod (``pilot/cmd/pilot-discovery/app/request.go``)
reaches 127.0.0.1:15014 and prints the body. The fake below answers as such a cluster does;
reading through ``pods/proxy`` (the old way) finds no proxy connected.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from meshproof.checks import proxies
from meshproof.checks.proxies import judge_proxy_health, sync_status
from meshproof.clients import kube
from meshproof.clients.istiod import DebugUnreadable, debug_get
from meshproof.clients.kube import ClusterApi, ExecResult
from meshproof.errors import PermissionDenied
from meshproof.sli.verdict import Verdict

Obj = dict[str, Any]
KINDS = ("cluster", "listener", "route", "endpoint")


def _pod(name: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "production"},
            "spec": {"containers": [{"name": "app"}, {"name": "istio-proxy"}]},
            "status": {"phase": "Running",
                       "containerStatuses": [{"name": "app", "ready": True},
                                             {"name": "istio-proxy", "ready": True}]}}


class RealClusterFake:
    """A cluster as a real one answers: istiod's debug endpoints 401 through pods/proxy
    (what ``ClusterApi.raw`` raises for it), and by exec what ``pilot-discovery`` prints."""

    cluster = "aws-eks"

    def __init__(self, pods: list[Obj], *, exec_result: ExecResult | None = None) -> None:
        self.pods = pods
        self.execs: list[tuple[str, str, list[str], str]] = []
        rows = [{"proxy": f"{p['metadata']['name']}.production",
                 **{f"{k}_sent": "v1" for k in KINDS}, **{f"{k}_acked": "v1" for k in KINDS}}
                for p in pods]
        self.exec_result = exec_result or ExecResult(0, json.dumps(rows) + "\n", "")

    def get(self, path: str, **_: Any) -> Obj:
        if path.endswith("/namespaces/istio-system/pods"):
            return {"items": [{"metadata": {"name": "istiod-1", "namespace": "istio-system"},
                               "status": {"phase": "Running", "podIP": "10.0.0.1"}}]}
        return {"items": self.pods}

    def proxy(self, kind: str, namespace: str, name: str, port: int | str, path: str,
              **_: Any) -> bytes:
        if str(port) == "15014" and path.lstrip("/").startswith("debug/"):
            raise PermissionDenied(f"GET /api/v1/namespaces/{namespace}/{kind}/{name}:{port}/"
                                   f"proxy/{path}: HTTP 401 Unauthorized")
        return b""

    def exec(self, namespace: str, pod: str, command: list[str], *, container: str = "",
             timeout: float | None = None) -> ExecResult:
        self.execs.append((namespace, pod, command, container))
        return self.exec_result


def test_sync_state_is_read_by_exec_of_pilot_discovery() -> None:
    fake = RealClusterFake([_pod("a"), _pod("b")])
    rows = sync_status(fake)  # type: ignore[arg-type]
    assert set(rows) == {"a.production", "b.production"}
    assert fake.execs == [("istio-system", "istiod-1",
                           ["pilot-discovery", "request", "GET", "/debug/syncz"], "discovery")]
    judgement = judge_proxy_health(fake, namespaces=["production"],  # type: ignore[arg-type]
                                   required=1.0)
    assert judgement.verdict is Verdict.HELD, judgement.evidence


def test_the_old_pods_proxy_read_finds_nothing_on_a_real_cluster(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The way the suite read syncz before (``pods/proxy`` to 15014): every proxy looks
    disconnected, a false violation; what it fails on is the 401."""
    fake = RealClusterFake([_pod("a")])

    def old_way(api: Any, pod: str, path: str, **_: Any) -> str:
        return api.proxy("pods", "istio-system", pod, 15014, path.lstrip("/")).decode()

    monkeypatch.setattr(proxies, "debug_get", old_way)
    unanswered: list[str] = []
    assert sync_status(fake, unanswered) == {}  # type: ignore[arg-type]
    assert "HTTP 401" in unanswered[0]
    judgement = judge_proxy_health(fake, namespaces=["production"],  # type: ignore[arg-type]
                                   required=1.0)
    assert judgement.verdict is Verdict.VIOLATED


def test_an_exec_refused_403_is_not_measurable_and_names_the_permission(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The websocket client reports a refused exec as status 0 with the handshake's answer
    (websocket-client ``_handshake.py``); the verdict says which grant is missing."""
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
              "code": 403, "message": 'pods "istiod-1" is forbidden: User '
              '"system:serviceaccount:meshproof:meshproof" cannot create resource "pods/exec" '
              'in API group "" in the namespace "istio-system"'}

    def refuse(*_: Any, **__: Any) -> Any:
        raise ApiException(status=0, reason="Handshake status 403 Forbidden -+-+- "
                           "{'content-type': 'application/json'} -+-+- " + json.dumps(status))

    monkeypatch.setattr(kube, "stream", refuse)
    from kubernetes import client
    api = ClusterApi("aws-eks", "aws-eks", client.ApiClient(client.Configuration()), 5.0)
    with pytest.raises(DebugUnreadable) as caught:
        debug_get(api, "istiod-1", "/debug/syncz")
    assert "HTTP 403 Forbidden" in str(caught.value) and "cannot create" in str(caught.value)

    fake = RealClusterFake([_pod("a")])
    fake.exec = lambda *a, **k: api.exec(*a, **k)  # type: ignore[method-assign]
    judgement = judge_proxy_health(fake, namespaces=["production"],  # type: ignore[arg-type]
                                   required=1.0)
    assert judgement.verdict is Verdict.NOT_MEASURABLE
    assert "`create`" in judgement.reason and "`pods/exec` in istio-system" in judgement.reason


def test_istiod_refusing_the_exec_caller_is_not_measurable() -> None:
    """``pilot-discovery request`` exits 255 with ``received unsuccessful status code 401``
    (``pilot/pkg/request/command.go``): the read is not possible, not istiod down."""
    fake = RealClusterFake([_pod("a")], exec_result=ExecResult(
        255, "", "Error: received unsuccessful status code 401: \n"))
    judgement = judge_proxy_health(fake, namespaces=["production"],  # type: ignore[arg-type]
                                   required=1.0)
    assert judgement.verdict is Verdict.NOT_MEASURABLE
    assert "status code 401" in judgement.reason


def test_an_istiod_that_does_not_answer_counts_as_knowing_no_proxy() -> None:
    fake = RealClusterFake([_pod("a")], exec_result=ExecResult(
        255, "", 'Error: Get "http://127.0.0.1:15014/debug/syncz": connection refused\n'))
    unanswered: list[str] = []
    assert sync_status(fake, unanswered) == {}  # type: ignore[arg-type]
    assert "connection refused" in unanswered[0]
