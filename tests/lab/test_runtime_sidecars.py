"""Sidecar containers (init containers with ``restartPolicy: Always``) as the kubelet runs them.

Kubernetes KEP-753, GA in 1.33 (kubernetes/kubernetes
``pkg/kubelet/kuberuntime/kuberuntime_manager.go`` ``computeInitContainerActions``,
``kuberuntime_termination_order.go``, ``pkg/kubelet/prober/prober_manager.go``
``UpdatePodStatus``; ``pkg/printers/internalversion/printers.go`` ``printPod``): a sidecar
starts in its place among the init containers, and the next container starts only once it
has started (past its startup probe); it keeps running beside the app containers, counts in
READY (``2/2``) and in the pod's Ready condition, is restarted whenever it exits whatever the
pod's ``restartPolicy``, and on deletion gets SIGTERM only after the app containers have
exited. Istio ≥ 1.27 injects ``istio-proxy`` this way on kubelets ≥ 1.33.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshproof.timeouts import DEFAULT_TIMEOUTS as T
from meshproof.waiting import eventually
from tests.support.lab import RunningLab, shared_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl]

POD = """\
apiVersion: v1
kind: Pod
metadata: {name: with-sidecar}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 10
  initContainers:
  - name: setup
    image: busybox
    command: [sh, -c, "echo setup >> /data/order"]
    volumeMounts: [{name: data, mountPath: /data}]
  - name: side
    image: busybox
    restartPolicy: Always
    command: [sh, -c, "trap 'echo side-term >> /data/order; exit 0' TERM;
              sleep 1; echo side-up >> /data/order; touch /data/side-up;
              while [ ! -f /data/crash ]; do sleep 0.1; done; rm -f /data/crash; exit 3"]
    startupProbe: {exec: {command: [test, -f, /data/side-up]}, periodSeconds: 1}
    readinessProbe: {exec: {command: [test, -f, /data/side-up]}, periodSeconds: 1}
    volumeMounts: [{name: data, mountPath: /data}]
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "trap 'sleep 1; echo app-term >> /data/order; exit 0' TERM;
              echo app-start >> /data/order; while true; do sleep 0.1; done"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: sidecar-order}}]
"""


@pytest.fixture(scope="module")
def lab() -> RunningLab:
    return shared_lab()


def _pod(lab: RunningLab, ns: str) -> dict[str, Any]:
    return json.loads(lab.kubectl("get", "pod", "with-sidecar", "-n", ns, "-o", "json").stdout)


def _side(pod: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in pod["status"].get("initContainerStatuses") or []
                if s["name"] == "side")


def test_a_sidecar_starts_first_runs_beside_the_app_restarts_and_stops_last(
        lab: RunningLab) -> None:
    ns = lab.namespace("sidecar")
    lab.apply(POD, namespace=ns)
    lab.kubectl("wait", "--for=condition=Ready", "pod/with-sidecar", "-n", ns,
                f"--timeout={int(T.pod_ready)}s")
    pod = _pod(lab, ns)
    side = _side(pod)
    assert (side["started"], side["ready"], list(side["state"])) == (True, True, ["running"])
    assert [c["name"] for c in pod["status"]["containerStatuses"]] == ["app"]
    order = lab.kubectl("exec", "with-sidecar", "-n", ns, "-c", "side", "--",
                        "cat", "/data/order").stdout.split()
    assert order == ["setup", "side-up", "app-start"], order
    row = lab.kubectl("get", "pods", "-n", ns, "--no-headers").stdout.split()
    assert row[1:3] == ["2/2", "Running"], row

    # The sidecar exits 3 under a pod whose restartPolicy is Never: it is restarted anyway,
    # and the app keeps running.
    lab.kubectl("exec", "with-sidecar", "-n", ns, "-c", "app", "--", "touch", "/data/crash")

    def restarted() -> dict[str, Any]:
        pod = _pod(lab, ns)
        side = _side(pod)
        assert side["restartCount"] >= 1 and side.get("ready"), json.dumps(side)
        assert side["lastState"]["terminated"]["exitCode"] == 3, json.dumps(side)
        return pod

    pod = eventually(restarted, timeout=T.pod_ready, interval=T.poll_interval,
                     what="the sidecar restarted")
    app = pod["status"]["containerStatuses"][0]
    assert (app["restartCount"], list(app["state"])) == (0, ["running"])
    assert pod["status"]["phase"] == "Running"

    lab.kubectl("delete", "pod", "with-sidecar", "-n", ns, "--timeout=60s")
    lab.apply(POD.replace("with-sidecar", "reader"), namespace=ns)
    lab.kubectl("wait", "--for=condition=Ready", "pod/reader", "-n", ns,
                f"--timeout={int(T.pod_ready)}s")
    order = lab.kubectl("exec", "reader", "-n", ns, "-c", "app", "--",
                        "cat", "/data/order").stdout.split()
    first_run = order[:order.index("setup", 1)]
    assert first_run[-2:] == ["app-term", "side-term"], order
