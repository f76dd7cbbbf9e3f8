"""experiments/backup-restore.json and the activities it calls (no cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chaoslib.experiment import ensure_experiment_is_valid

from meshproof.backup import FAULT
from meshproof.chaos import backup
from meshproof.chaos.experiments import load_drill_experiment

EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "backup-restore.json"


def test_the_experiment_is_valid_and_declares_its_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("TARGET", "FAULT_CLUSTER"):
        monkeypatch.setenv(f"MESHPROOF_{key}", "x")
    doc = json.loads(EXPERIMENT.read_text())
    ensure_experiment_is_valid(doc)
    drill = load_drill_experiment(EXPERIMENT)
    assert drill.guarantees == ("BACKUP-RESTORE",) and "BACKUP-RESTORE" in doc["tags"]
    assert drill.faults == {"fault_cluster": (FAULT,)}
    rollbacks = [a["provider"]["func"] for a in doc["rollbacks"]]
    assert rollbacks == ["repair_mesh_config", "restore", "remove_probe_agents"]
    assert "aws-eks" not in EXPERIMENT.read_text()


def test_every_activity_it_calls_is_exported_and_documented() -> None:
    listed = {a["name"]: a for a in backup.load_exported_activities()}
    assert "load_exported_activities" not in listed
    assert {n for n, a in listed.items() if a["type"] == "probe"} == set(backup.PROBES)
    assert all(a["doc"] for a in listed.values())
    args = {a["name"]: a.get("type") for a in listed["requests_after_restore"]["arguments"]}
    assert args["port"] == "integer" and args["from_cluster"] == "string"
    doc = json.loads(EXPERIMENT.read_text())
    for activity in [*doc["method"], *doc["rollbacks"]]:
        provider = activity["provider"]
        if provider["module"] == backup.__name__:
            assert provider["func"] in listed, provider["func"]
