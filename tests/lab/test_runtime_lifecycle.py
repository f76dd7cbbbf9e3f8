"""Pod lifecycle details: init containers, probes, restart policies, volumes, env, exec stdin."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshproof.timeouts import DEFAULT_TIMEOUTS as T
from meshproof.waiting import eventually
from tests.support.lab import RunningLab, shared_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl]


@pytest.fixture(scope="module")
def lab() -> RunningLab:
    return shared_lab()


def _pod(lab: RunningLab, ns: str, name: str) -> dict[str, Any]:
    return json.loads(lab.kubectl("get", "pod", name, "-n", ns, "-o", "json").stdout)


def _until(lab: RunningLab, ns: str, name: str, check: Any, what: str) -> dict[str, Any]:
    def probe() -> dict[str, Any]:
        pod = _pod(lab, ns, name)
        assert check(pod), json.dumps(pod.get("status"))[:600]
        return pod

    return eventually(probe, timeout=T.pod_ready, interval=T.poll_interval, what=what)


def test_restart_policies_end_in_succeeded_or_failed(lab: RunningLab) -> None:
    ns = lab.namespace("policy")
    lab.apply(
        """\
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: [sh, -c, "echo done"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: fails}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: [sh, -c, "exit 2"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: retry}
spec:
  restartPolicy: OnFailure
  initContainers: [{name: setup, image: busybox, command: [sh, -c, "echo ready > /work/flag"],
                    volumeMounts: [{name: work, mountPath: /work}]}]
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "test -f /work/count && exit 0; touch /work/count; exit 1"]
    volumeMounts: [{name: work, mountPath: /work}]
  volumes: [{name: work, emptyDir: {}}]
""",
        namespace=ns,
    )
    once = _until(lab, ns, "once", lambda p: p["status"]["phase"] == "Succeeded", "once done")
    assert once["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert lab.kubectl("logs", "once", "-n", ns).stdout == "done\n"
    fails = _until(lab, ns, "fails", lambda p: p["status"]["phase"] == "Failed", "fails failed")
    assert fails["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
    retry = _until(
        lab,
        ns,
        "retry",
        lambda p: p["status"]["phase"] == "Succeeded",
        "retry succeeded on its second run",
    )
    assert retry["status"]["containerStatuses"][0]["restartCount"] == 1
    assert retry["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    assert retry["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_liveness_failure_restarts_and_readiness_gates_ready(lab: RunningLab) -> None:
    ns = lab.namespace("probes")
    lab.apply(
        """\
apiVersion: v1
kind: Pod
metadata: {name: sick}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "touch /tmp/alive; sleep 1; rm -f /tmp/alive; sleep 3600"]
    livenessProbe:
      exec: {command: [sh, -c, "test -f /tmp/alive"]}
      initialDelaySeconds: 2
      periodSeconds: 1
      failureThreshold: 1
    readinessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
""",
        namespace=ns,
    )
    pod = _until(
        lab,
        ns,
        "sick",
        lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 1,
        "liveness restart",
    )
    assert pod["status"]["containerStatuses"][0]["ready"] is False
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == "False" and ready["PodScheduled"] == "True"
    events = json.loads(lab.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    messages = [e["message"] for e in events if e["reason"] in ("Killing", "Unhealthy")]
    assert any("failed liveness probe, will be restarted" in m for m in messages), messages
    assert any(m.startswith("Readiness probe failed") for m in messages), messages


def test_lab_program_sees_env_volumes_and_binds_its_pod_ip(lab: RunningLab) -> None:
    ns = lab.namespace("echo", context="gcp-gke")
    lab.apply(
        """\
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {greeting: hello-from-configmap}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {token: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: echo, labels: {app: echo}}
spec:
  containers:
  - name: echo
    image: meshproof/lab-echo:latest
    args: ["9000"]
    env:
    - {name: TOKEN, valueFrom: {secretKeyRef: {name: sec, key: token}}}
    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
    ports: [{containerPort: 9000}]
    readinessProbe: {tcpSocket: {port: 9000}}
    volumeMounts: [{name: cfg, mountPath: /etc/echo}]
  volumes: [{name: cfg, configMap: {name: cfg}}]
""",
        namespace=ns,
        context="gcp-gke",
    )
    pod = _until_ctx(lab, ns, "echo")
    ip = pod["status"]["podIP"]
    base = f"/api/v1/namespaces/{ns}/pods/echo:9000/proxy"
    who = json.loads(lab.kubectl("get", "--raw", f"{base}/hi", context="gcp-gke").stdout)
    assert who == {**who, "cluster": "gcp-gke", "namespace": ns, "pod": "echo", "ip": ip}
    text = lab.kubectl(
        "get", "--raw", f"{base}/file?path=/etc/echo/greeting", context="gcp-gke"
    ).stdout
    assert text == "hello-from-configmap"
    token = lab.kubectl(
        "get",
        "--raw",
        f"{base}/file?path=/var/run/secrets/kubernetes.io/serviceaccount/namespace",
        context="gcp-gke",
    ).stdout
    assert token == ns
    env = lab.kubectl("exec", "echo", "-n", ns, "--", "env", context="gcp-gke").stdout
    assert "TOKEN=s3cret" in env and "SA=default" in env


def _until_ctx(lab: RunningLab, ns: str, name: str) -> dict[str, Any]:
    def ready() -> dict[str, Any]:
        pod = json.loads(
            lab.kubectl("get", "pod", name, "-n", ns, "-o", "json", context="gcp-gke").stdout
        )
        assert pod["status"].get("containerStatuses", [{}])[0].get("ready"), pod["status"]
        return pod

    return eventually(ready, timeout=T.pod_ready, interval=T.poll_interval, what=f"{name} ready")


def test_exec_with_stdin(lab: RunningLab) -> None:
    ns = lab.namespace("stdin")
    lab.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: cat}\nspec:\n  containers:\n"
        "  - {name: c, image: busybox, command: [sleep, '3600']}\n",
        namespace=ns,
    )
    lab.kubectl("wait", "--for=condition=Ready", "pod/cat", "-n", ns, "--timeout=60s")
    out = lab.kubectl("exec", "-i", "cat", "-n", ns, "--", "wc", "-l", stdin="a\nb\nc\n")
    assert out.stdout.strip() == "3"


def test_deleting_a_namespace_stops_its_pods(lab: RunningLab) -> None:
    ns = lab.namespace("gone")
    lab.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
        "  terminationGracePeriodSeconds: 1\n  containers:\n"
        "  - {name: c, image: busybox, command: [sleep, '3600']}\n",
        namespace=ns,
    )
    lab.kubectl("wait", "--for=condition=Ready", "pod/p", "-n", ns, "--timeout=60s")
    pid_file = lab.root / "pods" / "aws-eks" / ns / "p" / "pid"
    assert pid_file.exists()
    lab.kubectl("delete", "namespace", ns, "--timeout=60s")
    assert not pid_file.exists()
    gone = lab.kubectl("get", "namespace", ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_pods_call_the_api_with_their_token_and_see_config_updates(lab: RunningLab) -> None:
    ns = lab.namespace("incluster")
    lab.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {mode: one}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers:\n"
        "  - name: c\n    image: curlimages/curl\n    command: [sleep, infinity]\n"
        "    volumeMounts: [{name: cfg, mountPath: /etc/cfg}]\n"
        "  volumes: [{name: cfg, configMap: {name: cfg}}]\n",
        namespace=ns,
    )
    lab.kubectl("wait", "--for=condition=Ready", "pod/client", "-n", ns, "--timeout=60s")
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    script = (f'curl -s -o /dev/null -w "%{{http_code}}" --cacert {sa}/ca.crt '
              f'-H "Authorization: Bearer $(cat {sa}/token)" '
              f"https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/{ns}"
              "/pods")
    code = lab.kubectl("exec", "client", "-n", ns, "--", "sh", "-c", script).stdout
    assert code == "200"
    forged = script.replace(f"$(cat {sa}/token)", "not-a-token")
    assert lab.kubectl("exec", "client", "-n", ns, "--", "sh", "-c", forged).stdout == "401"

    lab.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {mode: two}\n",
              namespace=ns)

    def updated() -> None:
        out = lab.kubectl("exec", "client", "-n", ns, "--", "cat", "/etc/cfg/mode").stdout
        assert out == "two", out

    eventually(updated, timeout=T.config_propagation, interval=T.poll_interval,
               what="ConfigMap update in the pod's volume")


def test_post_start_and_pre_stop_hooks_run(lab: RunningLab) -> None:
    ns = lab.namespace("hooks")
    pod = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    lifecycle:
      postStart: {{exec: {{command: [sh, -c, "echo started > /data/{name}-start"]}}}}
      preStop: {{exec: {{command: [sh, -c, "echo stopping > /data/{name}-stop"]}}}}
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes: [{{name: data, persistentVolumeClaim: {{claimName: shared}}}}]
"""
    lab.apply(pod.format(name="first"), namespace=ns)
    lab.kubectl("wait", "--for=condition=Ready", "pod/first", "-n", ns, "--timeout=60s")
    assert lab.kubectl("exec", "first", "-n", ns, "--", "cat",
                       "/data/first-start").stdout == "started\n"
    lab.kubectl("delete", "pod", "first", "-n", ns, "--timeout=60s")
    lab.apply(pod.format(name="second"), namespace=ns)
    lab.kubectl("wait", "--for=condition=Ready", "pod/second", "-n", ns, "--timeout=60s")
    assert lab.kubectl("exec", "second", "-n", ns, "--", "cat",
                       "/data/first-stop").stdout == "stopping\n"


def test_jobs_run_to_completion_and_fail_past_their_backoff_limit(lab: RunningLab) -> None:
    ns = lab.namespace("jobs")
    lab.apply("""\
apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "echo index=$JOB_COMPLETION_INDEX"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "exit 1"]}]
""", namespace=ns)
    lab.kubectl("wait", "--for=condition=complete", "job/count", "-n", ns, "--timeout=60s")
    job = json.loads(lab.kubectl("get", "job", "count", "-n", ns, "-o", "json").stdout)
    assert job["status"]["succeeded"] == 3 and job["status"]["completedIndexes"] == "0,1,2"
    pods = json.loads(lab.kubectl("get", "pods", "-n", ns, "-l", "job-name=count", "-o",
                                  "json").stdout)["items"]
    logs = {lab.kubectl("logs", p["metadata"]["name"], "-n", ns).stdout for p in pods}
    assert logs == {"index=0\n", "index=1\n", "index=2\n"}
    lab.kubectl("wait", "--for=condition=failed", "job/doomed", "-n", ns, "--timeout=60s")
    doomed = json.loads(lab.kubectl("get", "job", "doomed", "-n", ns, "-o", "json").stdout)
    assert doomed["status"]["failed"] == 2
    assert {c["type"]: c["reason"] for c in doomed["status"]["conditions"]}["Failed"] == \
        "BackoffLimitExceeded"


def test_daemonset_runs_one_pod_on_the_node_and_rolls_out(lab: RunningLab) -> None:
    ns = lab.namespace("ds", context="gcp-gke")
    manifest = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}, annotations: {{version: "{v}"}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: c, image: busybox, command: [sleep, "3600"]}}]
"""
    lab.apply(manifest.format(v=1), namespace=ns, context="gcp-gke")
    lab.kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s", context="gcp-gke")
    lab.apply(manifest.format(v=2), namespace=ns, context="gcp-gke")
    lab.kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s", context="gcp-gke")
    pods = json.loads(lab.kubectl("get", "pods", "-n", ns, "-o", "json",
                                  context="gcp-gke").stdout)["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 1 and live[0]["metadata"]["annotations"]["version"] == "2"
    assert live[0]["spec"]["nodeName"] == "gcp-gke-control-plane"
