"""chaosk8s through plain `chaos run`, against both lab clusters at once.

The integration test of the lab's API server and runtime: every activity goes
through the official client the way a drill's experiment does, with the kube
context taken from the activity's secrets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meshproof.timeouts import DEFAULT_TIMEOUTS as T
from meshproof.waiting import eventually
from tests.support.lab import RunningLab, shared_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl]

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, labels: {app: chaos}}
spec:
  replicas: 2
  selector: {matchLabels: {app: chaos}}
  template:
    metadata: {labels: {app: chaos}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: app, image: busybox, command: [sleep, "3600"]}
"""


def _probe(
    title: str, func: str, module: str, secret: str, tolerance: Any = None, **args: Any
) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": "probe",
        "name": title,
        "provider": {
            "type": "python",
            "module": module,
            "func": func,
            "arguments": args,
            "secrets": [secret],
        },
    }
    if tolerance is not None:
        activity["tolerance"] = tolerance
    return activity


def _action(
    title: str, func: str, module: str, secret: str, pause: float = 0, **args: Any
) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": "action",
        "name": title,
        "provider": {
            "type": "python",
            "module": module,
            "func": func,
            "arguments": args,
            "secrets": [secret],
        },
    }
    if pause:
        activity["pauses"] = {"after": pause}
    return activity


def experiment(ns: str) -> dict[str, Any]:
    dep, pod = "chaosk8s.deployment", "chaosk8s.pod"
    healthy = [
        _probe(
            f"app-healthy-{s}",
            "deployment_available_and_healthy",
            f"{dep}.probes",
            s,
            True,
            name="app",
            ns=ns,
        )
        for s in ("east", "west")
    ]
    return {
        "version": "1.0.0",
        "title": "Both lab clusters survive pod loss, scaling and a rollout",
        "description": "chaosk8s actions and probes against aws-eks and gcp-gke.",
        "secrets": {
            "east": {"KUBERNETES_CONTEXT": "aws-eks"},
            "west": {"KUBERNETES_CONTEXT": "gcp-gke"},
        },
        "steady-state-hypothesis": {"title": "app available in both clusters", "probes": healthy},
        "method": [
            _action(
                "kill-one-east",
                "terminate_pods",
                f"{pod}.actions",
                "east",
                pause=4,
                label_selector="app=chaos",
                ns=ns,
                qty=1,
                rand=True,
            ),
            _action(
                "scale-west",
                "scale_deployment",
                f"{dep}.actions",
                "west",
                pause=4,
                name="app",
                replicas=3,
                ns=ns,
            ),
            _probe(
                "three-west",
                "count_pods",
                f"{pod}.probes",
                "west",
                3,
                label_selector="app=chaos",
                ns=ns,
                phase="Running",
            ),
            _action(
                "rollout-east",
                "rollout_deployment",
                f"{dep}.actions",
                "east",
                pause=6,
                name="app",
                ns=ns,
            ),
            _probe(
                "running-east",
                "pods_in_phase",
                f"{pod}.probes",
                "east",
                True,
                label_selector="app=chaos",
                phase="Running",
                ns=ns,
            ),
            _action(
                "exec-west",
                "exec_in_pods",
                f"{pod}.actions",
                "west",
                cmd="sh -c 'echo from-$HOSTNAME'",
                label_selector="app=chaos",
                ns=ns,
                container_name="app",
                qty=1,
            ),
        ],
        "rollbacks": [
            _action(
                "scale-back-west",
                "scale_deployment",
                f"{dep}.actions",
                "west",
                name="app",
                replicas=2,
                ns=ns,
            ),
        ],
    }


def test_chaos_run_against_both_contexts(tmp_path: Path) -> None:
    lab: RunningLab = shared_lab()
    ns = lab.namespace("chaos")
    lab.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n", context="gcp-gke")
    for context in lab.contexts:
        lab.apply(APP, namespace=ns, context=context)
        lab.kubectl(
            "rollout", "status", "deployment/app", "-n", ns, "--timeout=120s", context=context
        )
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment(ns), indent=2))
    journal = tmp_path / "journal.json"
    chaos = Path(sys.executable).with_name("chaos")
    proc = subprocess.run(  # the journal says how it went
        [
            str(chaos),
            "--no-version-check",
            "run",
            "--journal-path",
            str(journal),
            str(path),
        ],
        env=lab.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(journal.read_text())
    assert result["status"] == "completed", proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["deviated"] is False
    runs = {r["activity"]["name"]: r for r in result["run"]}
    assert all(r["status"] == "succeeded" for r in runs.values()), runs
    assert "from-app-" in json.dumps(runs["exec-west"]["output"])

    def scaled_back() -> None:
        out = lab.kubectl("get", "deploy", "app", "-n", ns, "-o", "json", context="gcp-gke")
        assert json.loads(out.stdout)["spec"]["replicas"] == 2

    eventually(
        scaled_back,
        timeout=T.api_request,
        interval=T.poll_interval,
        what="rollback scaled gcp-gke back",
    )
