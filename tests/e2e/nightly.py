"""The end-to-end runs' shared parts: a nightly run on a lab, its verdicts, and one
negative control (break a switch, run, heal, judge)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from meshproof.lab.switches import SWITCH_BREAKS, SWITCH_CASCADES
from meshproof.proxypod import has_proxy, is_native_sidecar
from tests.support.lab import RunningLab, lab_command

ROOT = Path(__file__).resolve().parents[2]


def nightly(lab: RunningLab, reports: Path) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "meshproof", "run", "--target", str(lab.target),
         "--profile", "nightly", "--report-dir", str(reports)],
        env={**lab.env, "MESHPROOF_RUN_ID": reports.name}, capture_output=True, text=True,
        timeout=900, check=False)
    report = json.loads((reports / "report.json").read_text()) if (
        reports / "report.json").exists() else {}
    return proc.returncode, report, proc.stdout + proc.stderr


def plain_pytest_nightly(lab: RunningLab, reports: Path) -> tuple[dict[str, Any], str]:
    """The nightly features through plain pytest (README "Tests"), reports in ``reports``."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "features", "--target", str(lab.target),
         "-m", "nightly", "--meshproof-report",
         str(reports), "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, env={**lab.env, "MESHPROOF_RUN_ID": reports.name}, capture_output=True,
        text=True, timeout=900, check=False)
    report = json.loads((reports / "report.json").read_text()) if (
        reports / "report.json").exists() else {}
    return report, proc.stdout + proc.stderr


def proxy_shapes(lab: RunningLab, namespace: str = "sample") -> set[str]:
    """How injection gave each pod of ``namespace`` its proxy, in every cluster: ``native``
    (a restartable init container) or ``classic`` (a container)."""
    shapes: set[str] = set()
    for context in lab.contexts:
        pods = json.loads(lab.kubectl("get", "pods", "-n", namespace, "-o", "json",
                                      context=context).stdout)
        for pod in pods["items"]:
            if not has_proxy(pod):
                shapes.add("none")
            else:
                shapes.add("native" if is_native_sidecar(pod) else "classic")
    return shapes


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {g["id"]: g["verdict"] for g in report.get("guarantees") or []}


NIGHTLY_SWITCHES = {name: breaks for name, breaks in SWITCH_BREAKS.items()
                    if name != "no-outlier-detection"}  # EW-FAILOVER is a drill guarantee
LAB_ORDER = ("consul-stale", "cert-expiring", "dangling-route", "eastwest-gateway-flapping",
             "injection-off", "istiod-flapping", "no-https-redirect", "proxy-bloat",
             "remote-secret-missing", "slow-wan", "proxy-stale", "trust-domain-mismatch",
             "trust-domain-alias", "mtls-permissive", "route-weights")
"""Every nightly switch, run one after another on one lab in this order, the healthy runs last.

After each break and each heal, once no pod is terminating, the lab's Prometheus forgets
every series recorded until then (``meshproof lab forget-metrics``), so a run's windows (up
to 10 minutes: latency, handshakes, availability, memory, alerts) see only the fault in
place, and the next run's only what happens after the heal, as on a new lab. A heal is still
verified, not assumed: any two switches in a row may violate no guarantee in common, so a
fault its heal left in place shows up in the next run as a violation outside that run's
allowed set, and the healthy run, last, does the same for the last heal.
``test_the_order_exposes_every_heal`` keeps it so."""


def allowed_for(switch: str) -> frozenset[str]:
    return frozenset(NIGHTLY_SWITCHES[switch]) | SWITCH_CASCADES.get(switch, frozenset())


def check_switch(lab: RunningLab, switch: str, reports: Path) -> None:
    """Break ``switch``, forget the metrics, run the nightly, heal and forget again (always);
    the run must fail with every required guarantee violated and nothing outside the allowed
    set. Forgetting after the break leaves the run the fault in place, not the restarts that
    put it there (the same run a while after the break would see)."""
    broke = lab_command(lab.root, "break", switch, timeout=600)
    try:
        assert broke.returncode == 0, broke.stdout + broke.stderr
        forgot = lab_command(lab.root, "forget-metrics", timeout=300)
        assert forgot.returncode == 0, forgot.stdout + forgot.stderr
        code, report, output = nightly(lab, reports / switch)
    finally:
        healed = lab_command(lab.root, "heal", switch, timeout=600)
        forgot = lab_command(lab.root, "forget-metrics", timeout=300)
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert forgot.returncode == 0, forgot.stdout + forgot.stderr
    violated = {k for k, v in verdicts(report).items() if v == "violated"}
    required = set(NIGHTLY_SWITCHES[switch])
    allowed = allowed_for(switch)
    assert code == 1, f"{switch}: exit {code}\n{output[-3000:]}"
    assert required <= violated <= allowed, (
        f"{switch}: violated {sorted(violated)}, expected {sorted(required)}"
        f" (and possibly {sorted(allowed - required)})\n{output[-3000:]}")
