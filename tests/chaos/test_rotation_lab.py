"""The certificate-rotation drill on the lab: plain ``chaos run`` passes on a healthy lab, and
with ``trust-domain-mismatch`` (one cluster's workloads on a foreign root) CERT-ROTATION is
violated for the trust bundle and the failed handshakes, and nothing is left behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.test_drills_lab import chaos_run
from tests.safety.support import assert_nothing_left
from tests.support.lab import RunningLab, lab_command, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.prometheus]

EXPERIMENT = "certificate-rotation.json"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("rotation"), mesh=True) as lab:
        yield lab


def certificate(lab: RunningLab) -> dict[str, Any]:
    out = lab.kubectl("get", "certificate", "tls-cert", "-n", "istio-system", "-o", "json",
                      context=lab.contexts[0])
    return dict(json.loads(out.stdout))


def verdict_of(journal: dict[str, Any]) -> dict[str, Any]:
    return dict(next(r for r in journal["run"]
                     if r["activity"]["name"] == "cert-rotation-verdict"))


def test_plain_chaos_run_renews_rotates_and_holds(lab: RunningLab, tmp_path: Path) -> None:
    revision = int(certificate(lab)["status"]["revision"])
    journal, output = chaos_run(lab, EXPERIMENT, tmp_path)
    assert journal["status"] == "completed" and journal["deviated"] is False, output
    verdict = verdict_of(journal)["output"]
    assert verdict["verdict"] == "held", verdict
    evidence = verdict["evidence"]
    assert evidence["handshakes.handshake_errors"] == {c: 0.0 for c in lab.contexts}
    assert sum(evidence["handshakes.handshakes"].values()) > 0
    assert evidence["workloads.total"] >= 1 and evidence["workloads.stale"] == []
    assert evidence["trust.distinct"] == 1
    after = certificate(lab)["status"]
    assert int(after["revision"]) == revision + 1
    assert_nothing_left(lab)


def test_a_foreign_root_violates_cert_rotation(lab: RunningLab, tmp_path: Path) -> None:
    assert lab_command(lab.root, "break", "trust-domain-mismatch", timeout=400).returncode == 0
    try:
        journal, output = chaos_run(lab, EXPERIMENT, tmp_path)
    finally:
        assert lab_command(lab.root, "heal", "trust-domain-mismatch",
                           timeout=400).returncode == 0
    assert journal["deviated"] is True, output
    verdict = verdict_of(journal)
    assert verdict["status"] == "failed", output
    reason = verdict["exception"][-1]
    assert "violated: CERT-ROTATION" in reason, reason
    assert "mTLS handshakes failed" in reason or "different trust bundles" in reason, reason
    assert_nothing_left(lab)
