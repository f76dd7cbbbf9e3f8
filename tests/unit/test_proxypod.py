"""The suite finds the Istio proxy in both injection shapes.

Istio injects native sidecars by default on kubelets ≥ 1.33 (istio/istio
``pkg/kube/inject/webhook.go`` ``DetectNativeSidecar``): ``istio-proxy`` is then an init
container with ``restartPolicy: Always`` and its status is in ``initContainerStatuses``
(``pkg/kube/inject/testdata/inject/native-sidecar-opt-in.yaml.injected``). Code that looked
only at ``spec.containers`` / ``status.containerStatuses`` found no proxy in such a pod.
"""

from __future__ import annotations

from typing import Any

import pytest

from meshproof.analysis import ClusterObjects, analyze_objects
from meshproof.checks.injection import has_sidecar
from meshproof.checks.proxies import judge_proxy_health
from meshproof.proxypod import has_proxy, is_native_sidecar, proxy_container, proxy_status
from meshproof.sli.verdict import Verdict

Obj = dict[str, Any]
PROXY_IMAGE = "docker.io/istio/proxyv2:1.29.0"


def app_status(ready: bool = True) -> Obj:
    return {"name": "app", "ready": ready, "started": True, "restartCount": 0,
            "state": {"running": {"startedAt": "2026-12-04T00:00:00Z"}}}


def native_pod(name: str = "app-1", *, proxy_ready: bool = True) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "production"},
        "spec": {
            "initContainers": [
                {"name": "istio-init", "image": PROXY_IMAGE},
                {"name": "istio-proxy", "image": PROXY_IMAGE, "restartPolicy": "Always"},
            ],
            "containers": [{"name": "app", "image": "registry.example/app:1"}],
        },
        "status": {
            "phase": "Running",
            "initContainerStatuses": [
                {"name": "istio-init", "ready": True, "started": False, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {**app_status(proxy_ready), "name": "istio-proxy"},
            ],
            "containerStatuses": [app_status()],
        },
    }


def classic_pod(name: str = "app-2", *, proxy_ready: bool = True) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "production"},
        "spec": {
            "initContainers": [{"name": "istio-init", "image": PROXY_IMAGE}],
            "containers": [{"name": "app", "image": "registry.example/app:1"},
                           {"name": "istio-proxy", "image": PROXY_IMAGE}],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [app_status(), {**app_status(proxy_ready),
                                                 "name": "istio-proxy"}],
        },
    }


def test_a_native_sidecar_is_found_with_its_status() -> None:
    pod = native_pod()
    assert has_proxy(pod) and has_sidecar(pod) and is_native_sidecar(pod)
    assert (proxy_container(pod) or {}).get("restartPolicy") == "Always"
    assert (proxy_status(pod) or {}).get("started") is True


def test_a_classic_sidecar_is_found_with_its_status() -> None:
    pod = classic_pod()
    assert has_proxy(pod) and not is_native_sidecar(pod)
    assert (proxy_status(pod) or {}).get("name") == "istio-proxy"


def test_a_plain_init_container_named_istio_proxy_is_no_sidecar() -> None:
    pod = native_pod()
    del pod["spec"]["initContainers"][1]["restartPolicy"]
    assert not has_proxy(pod)


class FakeApi:
    """Pods by namespace and istiod's syncz, the two reads PROXY-HEALTH makes."""

    cluster = "aws-eks"

    def __init__(self, pods: list[Obj]) -> None:
        self.pods = pods

    def get(self, path: str, **_: Any) -> Obj:
        if path.endswith("/pods") and "/namespaces/" in path:
            return {"items": self.pods}
        if path.endswith("/pods"):
            return {"items": [{"metadata": {"name": "istiod-1", "namespace": "istio-system"},
                               "status": {"phase": "Running", "podIP": "10.0.0.1"}}]}
        return {"items": []}

    def exec(self, *_: Any, **__: Any) -> Any:
        """``pilot-discovery request GET /debug/syncz`` in istiod (meshproof.clients.istiod)."""
        import json

        from meshproof.clients.kube import ExecResult
        sent = {f"{kind}_sent": "v1" for kind in ("cluster", "listener", "route", "endpoint")}
        acked = {f"{kind}_acked": "v1" for kind in ("cluster", "listener", "route", "endpoint")}
        return ExecResult(0, json.dumps([{"proxy": f"{p['metadata']['name']}.production",
                                          **sent, **acked} for p in self.pods]) + "\n", "")


@pytest.mark.parametrize("shape", [native_pod, classic_pod])
def test_proxy_health_counts_an_unready_proxy_in_either_shape(shape: Any) -> None:
    healthy = judge_proxy_health(FakeApi([shape("a")]), namespaces=["production"],  # type: ignore[arg-type]
                                 required=1.0)
    assert healthy.evidence["proxies"] == 1, healthy.evidence
    assert healthy.verdict is Verdict.HELD, healthy.evidence
    unready = judge_proxy_health(FakeApi([shape("a", proxy_ready=False)]),  # type: ignore[arg-type]
                                 namespaces=["production"], required=1.0)
    assert unready.verdict is Verdict.VIOLATED
    assert unready.evidence["problems"] == {"a.production": "istio-proxy not Ready"}


def test_version_skew_reads_a_native_sidecars_image() -> None:
    istiod = {"metadata": {"name": "istiod-1", "namespace": "istio-system"},
              "spec": {"containers": [{"name": "discovery",
                                       "image": "docker.io/istio/pilot:1.31.0"}]}}
    objects = ClusterObjects("aws-eks", {"pods": [istiod, native_pod()]})
    codes = [f.code for f in analyze_objects([objects], namespaces=["production"])]
    assert "ProxyVersionSkew" in codes
