"""Workloads on the lab's runtime, driven with kubectl and the official client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from meshproof.timeouts import DEFAULT_TIMEOUTS as T
from meshproof.waiting import eventually
from tests.support.lab import RunningLab, shared_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl]

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, labels: {{app: web}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: python:3.12-slim
        command: ["python", "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
        env:
        - name: POD_IP
          valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
        ports: [{{name: http, containerPort: 8080}}]
        readinessProbe:
          httpGet: {{path: /, port: http}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


@pytest.fixture(scope="module")
def lab() -> RunningLab:
    return shared_lab()


def _pods(lab: RunningLab, ns: str, selector: str, context: str = "aws-eks") -> list[Any]:
    out = lab.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json", context=context)
    return [
        p for p in json.loads(out.stdout)["items"] if not p["metadata"].get("deletionTimestamp")
    ]


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def _wait_ready(
    lab: RunningLab, ns: str, selector: str, count: int, context: str = "aws-eks"
) -> list[Any]:
    def check() -> list[Any]:
        pods = _pods(lab, ns, selector, context)
        assert len(pods) == count and all(_ready(p) for p in pods), [
            (p["metadata"]["name"], p["status"].get("phase")) for p in pods
        ]
        return pods

    return eventually(
        check,
        timeout=T.pod_ready,
        interval=T.poll_interval,
        what=f"{count} ready pods {selector} in {ns}",
    )


@pytest.fixture()
def web(lab: RunningLab) -> str:
    ns = lab.namespace("web")
    lab.apply(WEB.format(replicas=2), namespace=ns)
    _wait_ready(lab, ns, "app=web", 2)
    return ns


@pytest.mark.parametrize("context,prefix", [("aws-eks", "127.1."), ("gcp-gke", "127.2.")])
def test_deployment_pods_become_ready_with_the_cluster_pod_range(
    lab: RunningLab, context: str, prefix: str
) -> None:
    ns = lab.namespace("ips", context=context)
    lab.apply(WEB.format(replicas=2), namespace=ns, context=context)
    pods = _wait_ready(lab, ns, "app=web", 2, context)
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 2 and all(ip.startswith(prefix) for ip in ips)
    deploy = json.loads(
        lab.kubectl("get", "deploy", "web", "-n", ns, "-o", "json", context=context).stdout
    )
    status = deploy["status"]
    assert status["availableReplicas"] == status["readyReplicas"] == 2
    assert "unavailableReplicas" not in status
    reasons = {c["type"]: c["reason"] for c in status["conditions"]}
    assert reasons == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }


def test_official_client_sees_endpoints_and_slices(lab: RunningLab, web: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(lab.client("aws-eks"))
    pods = core.list_namespaced_pod(web, label_selector="app=web").items
    ep = core.read_namespaced_endpoints("web", web)
    assert sorted(a.ip for a in ep.subsets[0].addresses) == sorted(p.status.pod_ip for p in pods)
    assert ep.subsets[0].ports[0].port == 8080 and ep.subsets[0].ports[0].name == "http"
    slices = (
        client.DiscoveryV1Api(lab.client("aws-eks"))
        .list_namespaced_endpoint_slice(web, label_selector="kubernetes.io/service-name=web")
        .items
    )
    assert len(slices) == 1 and all(e.conditions.ready for e in slices[0].endpoints)


def test_cluster_ip_forwards_to_a_ready_pod(lab: RunningLab, web: str) -> None:
    svc = json.loads(lab.kubectl("get", "svc", "web", "-n", web, "-o", "json").stdout)
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("127.11.")
    out = subprocess.run(  # the output says how it went
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-m",
            "5",
            f"http://{ip}:80/",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert out.stdout == "200"


def test_kill_9_of_the_pod_process_restarts_its_containers(lab: RunningLab, web: str) -> None:
    pod = _pods(lab, web, "app=web")[0]
    name = pod["metadata"]["name"]
    pid_file = lab.root / "pods" / "aws-eks" / web / name / "pid"
    pid = int(pid_file.read_text())
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    os.kill(pid, signal.SIGKILL)

    def restarted() -> dict[str, Any]:
        got = json.loads(lab.kubectl("get", "pod", name, "-n", web, "-o", "json").stdout)
        cs = got["status"]["containerStatuses"][0]
        assert cs["restartCount"] == 1 and cs["ready"], cs
        return cs

    cs = eventually(
        restarted, timeout=T.pod_ready, interval=T.poll_interval, what=f"pod {name} restarted"
    )
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert int(pid_file.read_text()) != pid
    assert cs["containerID"].startswith("lab://")


def test_a_deleted_pod_is_replaced_under_a_new_name(lab: RunningLab, web: str) -> None:
    before = {p["metadata"]["name"] for p in _pods(lab, web, "app=web")}
    victim = min(before)
    lab.kubectl("delete", "pod", victim, "-n", web, "--wait=true", "--timeout=30s")
    after = {p["metadata"]["name"] for p in _wait_ready(lab, web, "app=web", 2)}
    assert victim not in after and len(after - before) == 1


def test_rollout_restart_and_status_complete(lab: RunningLab, web: str) -> None:
    before = {p["metadata"]["name"] for p in _pods(lab, web, "app=web")}
    lab.kubectl("rollout", "restart", "deployment/web", "-n", web)
    done = lab.kubectl("rollout", "status", "deployment/web", "-n", web, "--timeout=120s")
    assert "successfully rolled out" in done.stdout
    after = {p["metadata"]["name"] for p in _wait_ready(lab, web, "app=web", 2)}
    assert not before & after


def test_scale_and_wait_for_ready(lab: RunningLab, web: str) -> None:
    lab.kubectl("scale", "deployment/web", "--replicas=3", "-n", web)
    eventually(
        lambda: _assert_count(lab, web, 3),
        timeout=T.pod_ready,
        interval=T.poll_interval,
        what="3 pods",
    )
    lab.kubectl(
        "wait", "--for=condition=Ready", "pods", "-l", "app=web", "-n", web, "--timeout=60s"
    )
    lab.kubectl("scale", "deployment/web", "--replicas=1", "-n", web)
    _wait_ready(lab, web, "app=web", 1)


def _assert_count(lab: RunningLab, ns: str, n: int) -> None:
    assert len(_pods(lab, ns, "app=web")) == n


def test_exec_passes_stdout_and_exit_code(lab: RunningLab, web: str) -> None:
    name = _pods(lab, web, "app=web")[0]["metadata"]["name"]
    out = lab.kubectl("exec", name, "-n", web, "--", "sh", "-c", "echo hello; exit 3", check=False)
    assert out.returncode == 3 and out.stdout.strip() == "hello"
    missing = lab.kubectl("exec", name, "-n", web, "--", "no-such-command", check=False)
    assert missing.returncode == 127 and "executable file not found" in missing.stderr


def test_logs_and_pod_proxy(lab: RunningLab, web: str) -> None:
    name = _pods(lab, web, "app=web")[0]["metadata"]["name"]
    body = lab.kubectl("get", "--raw", f"/api/v1/namespaces/{web}/pods/{name}:8080/proxy/").stdout
    assert "Directory listing" in body
    logs = lab.kubectl("logs", name, "-n", web).stdout
    assert '"GET / HTTP/1.1" 200' in logs


def test_events_tell_what_happened(lab: RunningLab, web: str) -> None:
    out = lab.kubectl("get", "events", "-n", web, "--sort-by=.lastTimestamp", "-o", "json")
    reasons = {e["reason"] for e in json.loads(out.stdout)["items"]}
    assert {
        "Scheduled",
        "Pulled",
        "Created",
        "Started",
        "ScalingReplicaSet",
        "SuccessfulCreate",
    } <= reasons


def test_unknown_image_is_image_pull_back_off(lab: RunningLab) -> None:
    ns = lab.namespace("pull", context="gcp-gke")
    lab.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n"
        "  - {name: c, image: example.invalid/no/such:1}\n",
        namespace=ns,
        context="gcp-gke",
    )

    def backoff() -> None:
        pod = json.loads(
            lab.kubectl("get", "pod", "bad", "-n", ns, "-o", "json", context="gcp-gke").stdout
        )
        waiting = pod["status"]["containerStatuses"][0]["state"].get("waiting", {})
        assert waiting.get("reason") == "ImagePullBackOff", waiting
        assert pod["status"]["phase"] == "Pending"

    eventually(backoff, timeout=T.pod_ready, interval=T.poll_interval, what="ImagePullBackOff")


HELLOWORLD_NAMES = {
    "release": "registry.istio.io/release/examples-helloworld-v1:1.0",
    "dockerhub": "docker.io/istio/examples-helloworld-v1:1.0",
    "gcr": "gcr.io/istio-release/examples-helloworld-v1:1.0",
}

HELLOWORLD = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: helloworld-{key}, labels: {{app: helloworld, hub: {key}}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: helloworld, hub: {key}}}}}
  template:
    metadata: {{labels: {{app: helloworld, hub: {key}}}}}
    spec:
      containers:
      - name: helloworld
        image: {image}
        imagePullPolicy: IfNotPresent
        ports: [{{containerPort: 5000}}]
        readinessProbe:
          httpGet: {{path: /hello, port: 5000}}
"""


def test_istio_sample_image_runs_under_each_hub_name(lab: RunningLab) -> None:
    """The helloworld sample's image under each name upstream has given it runs the same
    program: ``registry.istio.io/release/examples-helloworld-v1:1.0`` (istio/istio
    ``samples/helloworld/helloworld.yaml`` since 1.30, PR #59364 "Use registry.istio.io"),
    ``docker.io/istio/examples-helloworld-v1:1.0`` (the same file before 1.30) and
    ``gcr.io/istio-release/...`` (the hub of older releases)."""
    ns = lab.namespace("hubs")
    lab.apply("---\n".join(HELLOWORLD.format(key=k, image=i) for k, i in HELLOWORLD_NAMES.items()),
              namespace=ns)
    for key, image in HELLOWORLD_NAMES.items():
        (pod,) = _wait_ready(lab, ns, f"app=helloworld,hub={key}", 1)
        name = pod["metadata"]["name"]
        assert pod["status"]["containerStatuses"][0]["image"] == image
        body = lab.kubectl("get", "--raw",
                           f"/api/v1/namespaces/{ns}/pods/{name}:5000/proxy/hello").stdout
        assert body.strip() == f"Hello version: v1, instance: {name}", (image, body)


def test_crashing_container_backs_off_and_counts_restarts(lab: RunningLab) -> None:
    ns = lab.namespace("crash")
    lab.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: crash}\nspec:\n  containers:\n"
        "  - {name: c, image: busybox, command: [sh, -c, 'echo boom; exit 4']}\n",
        namespace=ns,
    )

    def crashing() -> None:
        pod = json.loads(lab.kubectl("get", "pod", "crash", "-n", ns, "-o", "json").stdout)
        cs = pod["status"]["containerStatuses"][0]
        assert cs["restartCount"] >= 2, cs
        assert cs["lastState"]["terminated"]["exitCode"] == 4

    eventually(crashing, timeout=T.pod_ready, interval=T.poll_interval, what="crash loop")
    assert "boom" in lab.kubectl("logs", "crash", "-n", ns, "--previous").stdout


def test_statefulset_pods_are_ordinal_with_their_own_volume(
    lab: RunningLab, tmp_path: Path
) -> None:
    ns = lab.namespace("sts", context="gcp-gke")
    lab.apply(
        """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: busybox:1.36
        command: ["sh", "-c", "echo $(POD) > /data/who; sleep 3600"]
        env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
""",
        namespace=ns,
        context="gcp-gke",
    )
    pods = _wait_ready(lab, ns, "app=db", 2, "gcp-gke")
    assert sorted(p["metadata"]["name"] for p in pods) == ["db-0", "db-1"]
    who = eventually(
        lambda: _nonempty(
            lab.kubectl(
                "exec", "db-1", "-n", ns, "--", "cat", "/data/who", context="gcp-gke"
            ).stdout
        ),
        timeout=10,
        interval=0.5,
        what="db-1 wrote its name",
    )
    assert who.strip() == "db-1"
    sts = json.loads(
        lab.kubectl("get", "sts", "db", "-n", ns, "-o", "json", context="gcp-gke").stdout
    )
    assert sts["status"]["readyReplicas"] == 2


def _nonempty(text: str) -> str:
    assert text.strip()
    return text
