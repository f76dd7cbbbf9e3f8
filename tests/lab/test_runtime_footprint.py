"""The lab stays light: 25+ pods in the two clusters fit in 2 GiB of RSS, daemon included."""

from __future__ import annotations

import json
import os

import pytest

from meshproof.timeouts import DEFAULT_TIMEOUTS as T
from meshproof.waiting import eventually
from tests.support.lab import RunningLab, shared_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl]

BUDGET_KIB = 2 * 1024 * 1024

FLEET = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: c
        image: {image}
        command: {command}
"""


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:  # field 5 of stat: the process group
                members.append(int(entry))
    return members


def test_twenty_five_pods_fit_in_two_gib() -> None:
    lab: RunningLab = shared_lab()
    for context in lab.contexts:
        ns = lab.namespace("fleet", context=context)
        lab.apply(FLEET.format(name="sleepers", replicas=10, image="curlimages/curl",
                               command='["sleep", "infinity"]'), namespace=ns, context=context)
        lab.apply(FLEET.format(name="pythons", replicas=3, image="python:3.12-slim",
                               command='["python", "-c", "import time; time.sleep(3600)"]'),
                  namespace=ns, context=context)

    def running() -> int:
        total = 0
        for context in lab.contexts:
            out = lab.kubectl("get", "pods", "-A", "--field-selector=status.phase=Running",
                              "-o", "json", context=context)
            total += len(json.loads(out.stdout)["items"])
        assert total >= 26, f"{total} pods running"
        return total

    pods = eventually(running, timeout=T.pod_ready, interval=T.poll_interval,
                      what="26 pods running")
    daemon = json.loads((lab.root / "lab.json").read_text())["pid"]
    rss = _rss_kib(daemon)
    for pid_file in (lab.root / "pods").glob("*/*/*/pid"):
        rss += sum(_rss_kib(p) for p in _group_members(int(pid_file.read_text())))
    assert rss < BUDGET_KIB, f"{pods} pods use {rss / 1024:.0f} MiB"
