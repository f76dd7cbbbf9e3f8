"""istiod's debug endpoints answer localhost or a valid token only, as upstream does.

istio/istio ``pilot/pkg/xds/debug.go``: every ``/debug/*`` handler on 15014 is wrapped in
``allowAuthenticatedOrLocalhost`` (since PR #32903); a caller that is not on localhost and
presents no valid token gets 401 with an empty body. The API server deletes the caller's
``Authorization`` after authenticating it (kubernetes/kubernetes
``staging/src/k8s.io/apiserver/pkg/endpoints/filters/authentication.go``), so ``pods/proxy``
to those paths answers 401. ``pilot-discovery request GET /debug/syncz`` in the istiod pod
(``pilot/cmd/pilot-discovery/app/request.go``, ``pilot/pkg/request/command.go``) calls
localhost:15014 and prints the body. ``/metrics`` stays open: Prometheus scrapes it.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshproof.checks.proxies import sync_status
from meshproof.clients.kube import connect
from meshproof.errors import PermissionDenied
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("istiod-debug"), mesh=True) as lab:
        yield lab


def _istiod(lab: RunningLab, context: str = "aws-eks") -> tuple[str, str]:
    pods = json.loads(lab.kubectl("get", "pods", "-n", "istio-system", "-l", "app=istiod",
                                  "-o", "json", context=context).stdout)["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"
               and not p["metadata"].get("deletionTimestamp")]
    assert running, "no running istiod"
    return running[0]["metadata"]["name"], running[0]["status"]["podIP"]


def test_pods_proxy_to_debug_syncz_answers_401_and_metrics_stays_open(mesh: RunningLab) -> None:
    """Through pods/proxy (the suite's bearer token sent, and stripped by the API server)
    istiod answers 401 to ``/debug/syncz``; ``/metrics`` answers 200."""
    name, _ = _istiod(mesh)
    api = connect("aws-eks", context="aws-eks", kubeconfig=Path(mesh.kubeconfig), timeout=30)
    with pytest.raises(PermissionDenied, match="HTTP 401"):
        api.proxy("pods", "istio-system", name, 15014, "debug/syncz")
    assert b"pilot_xds" in api.proxy("pods", "istio-system", name, 15014, "metrics")


def test_a_remote_caller_without_a_token_gets_an_empty_401(mesh: RunningLab) -> None:
    """From the host's loopback (not the pod's own address), no token: 401, empty body."""
    _, ip = _istiod(mesh)
    conn = http.client.HTTPConnection(ip, 15014, timeout=10)
    try:
        conn.request("GET", "/debug/syncz")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (401, b"")
        conn.request("GET", "/debug/syncz", headers={"Authorization": "Bearer not-a-jwt"})
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (401, b"")
    finally:
        conn.close()


def test_pilot_discovery_request_in_the_pod_reads_syncz(mesh: RunningLab) -> None:
    """``kubectl exec istiod -- pilot-discovery request GET /debug/syncz`` prints the JSON
    (istiod takes the in-pod caller for localhost); a 404 prints its body and exits 0, as
    ``command.go`` does; the suite's ``sync_status`` reads the same rows by the official
    client's websocket exec."""
    for context in mesh.contexts:
        name, _ = _istiod(mesh, context)
        out = mesh.kubectl("exec", "-n", "istio-system", name, "-c", "discovery", "--",
                           "pilot-discovery", "request", "GET", "/debug/syncz",
                           context=context)
        rows = json.loads(out.stdout)
        assert rows and all("proxy" in r and "cluster_acked" in r for r in rows), rows
        missing = mesh.kubectl("exec", "-n", "istio-system", name, "-c", "discovery", "--",
                               "pilot-discovery", "request", "GET", "debug/nothing",
                               context=context, check=False)
        assert missing.returncode == 0, missing.stderr  # 404 prints the body, exit 0
        api = connect(context, context=context, kubeconfig=Path(mesh.kubeconfig), timeout=30)
        read = sync_status(api)
        assert {r["proxy"] for r in rows} & set(read), f"sync_status read {read} on {context}"
