"""The Consul server loss drill on the lab: plain ``chaos run`` passes on a healthy lab (a new
leader, the catalog correct throughout, the server pod back), and with ``consul-stale`` (the
catalog sync stopped while helloworld's pods were replaced) DISCOVERY-FAILOVER is violated
for the catalog's wrong answers; nothing is left behind.
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

pytestmark = [pytest.mark.lab]

EXPERIMENT = "consul-server-loss.json"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("consul-loss"), mesh=True) as lab:
        yield lab


def server_uids(lab: RunningLab) -> set[str]:
    out = lab.kubectl("get", "pods", "-n", "consul", "-l", "component=server", "-o", "json",
                      context=lab.contexts[0])
    return {p["metadata"]["uid"] for p in json.loads(out.stdout)["items"]}


def verdict_of(journal: dict[str, Any]) -> dict[str, Any]:
    return dict(next(r for r in journal["run"]
                     if r["activity"]["name"] == "discovery-failover-verdict"))


def test_plain_chaos_run_elects_a_new_leader_and_keeps_the_catalog(lab: RunningLab,
                                                                  tmp_path: Path) -> None:
    before = server_uids(lab)
    journal, output = chaos_run(lab, EXPERIMENT, tmp_path)
    assert journal["status"] == "completed" and journal["deviated"] is False, output
    verdict = verdict_of(journal)["output"]
    assert verdict["verdict"] == "held", verdict
    evidence = verdict["evidence"]
    assert evidence["leader.leader_s"] is not None
    assert evidence["catalog.answered_after_leader"] >= 1
    assert evidence["catalog.correct"] == evidence["catalog.answered"]
    # the lost server was replaced by its StatefulSet, not re-created by the rollback
    assert server_uids(lab).isdisjoint(before)
    assert_nothing_left(lab)


def test_a_stale_catalog_violates_discovery_failover(lab: RunningLab, tmp_path: Path) -> None:
    assert lab_command(lab.root, "break", "consul-stale", timeout=400).returncode == 0
    try:
        journal, output = chaos_run(lab, EXPERIMENT, tmp_path)
    finally:
        assert lab_command(lab.root, "heal", "consul-stale", timeout=400).returncode == 0
    assert journal["deviated"] is True, output
    verdict = verdict_of(journal)
    assert verdict["status"] == "failed", output
    reason = verdict["exception"][-1]
    assert "violated: DISCOVERY-FAILOVER" in reason and "agreeing with Kubernetes" in reason, \
        reason
    assert "helloworld-sample: Consul" in reason, reason
    assert_nothing_left(lab)
