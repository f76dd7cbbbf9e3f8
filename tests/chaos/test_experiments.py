"""The experiment files: valid for Chaos Toolkit, tagged with guarantees, faults declared,
every fault with a rollback; the extension's activities discoverable with portable types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chaoslib.experiment import ensure_experiment_is_valid

import meshproof.chaos
from meshproof.catalog import load_catalog
from meshproof.chaos.experiments import (
    ROLES,
    default_experiments_dir,
    experiments_for,
    load_drill_experiment,
    role_assignments,
)
from meshproof.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.json"))
FAULT_ACTIONS = {"lose_east_west_gateway", "stop_istiod", "add_http_fault"}


def test_there_are_experiments() -> None:
    assert default_experiments_dir(ROOT) == ROOT / "experiments"
    assert {p.name for p in EXPERIMENTS} >= {
        "eastwest-gateway-loss.json", "istiod-outage.json", "circuit-breaker-trip.json"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_is_valid_and_declares_its_guarantees_and_faults(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads(path.read_text())
    for key in ("TARGET", "FAULT_CLUSTER", "CLIENT_CLUSTER", "FAULT_CONTEXT", "CLIENT_CONTEXT"):
        monkeypatch.setenv(f"MESHPROOF_{key}", "x")
    ensure_experiment_is_valid(doc)
    drill = load_drill_experiment(path)
    catalog = load_catalog()
    assert drill.guarantees and all(catalog.get(g).destructive for g in drill.guarantees)
    assert set(drill.guarantees) <= set(doc["tags"])
    assert set(drill.faults) <= set(ROLES)
    for role in drill.faults:
        assert role in doc["configuration"], f"{path.name}: role {role} is not configured"
    # every fault action in the method has a restore among the rollbacks
    funcs = [a["provider"]["func"] for a in doc["method"]]
    rollbacks = [a["provider"]["func"] for a in doc.get("rollbacks") or []]
    if FAULT_ACTIONS & set(funcs):
        assert "restore" in rollbacks
    assert "remove_probe_agents" in rollbacks
    # the verdict is judged, and the steady state sees it
    assert any(f == "judge_guarantee" or f.endswith("_verdict") for f in funcs)
    hypothesis = [p["provider"]["func"] for p in doc["steady-state-hypothesis"]["probes"]]
    assert "drill_guarantees_held" in hypothesis
    # no cluster or context is written into an experiment: they come from the environment
    text = path.read_text()
    assert "aws-eks" not in text and "gcp-gke" not in text


def test_activities_in_experiments_exist_in_the_extension() -> None:
    names = {a["name"] for a in meshproof.chaos.discover()["activities"]}
    for path in EXPERIMENTS:
        doc = json.loads(path.read_text())
        activities = [*doc["steady-state-hypothesis"]["probes"], *doc["method"],
                      *(doc.get("rollbacks") or [])]
        for activity in activities:
            provider = activity["provider"]
            if provider["module"].startswith("meshproof.chaos"):
                assert provider["func"] in names, f"{path.name}: {provider['func']}"


def test_discovery_lists_documented_activities_with_portable_types() -> None:
    discovery = meshproof.chaos.discover(discover_system=False)
    activities = {a["name"]: a for a in discovery["activities"]}
    assert {"lose_east_west_gateway", "restore", "add_http_fault", "sli_value",
            "alert_fires", "wait_for_ejection", "judge_guarantee"} <= set(activities)
    for activity in activities.values():
        assert activity["doc"], activity["name"]
    args = {a["name"]: a.get("type") for a in activities["start_traffic"]["arguments"]}
    assert args["port"] == "integer" and args["from_cluster"] == "string"
    assert args["max_s"] == "number"


def test_roles_fault_every_cluster_once_with_another_as_client() -> None:
    assert role_assignments(("a", "b", "c")) == [
        {"fault_cluster": "a", "client_cluster": "b"},
        {"fault_cluster": "b", "client_cluster": "c"},
        {"fault_cluster": "c", "client_cluster": "a"}]
    with pytest.raises(ConfigError, match="at least two clusters"):
        role_assignments(("a",))


def test_experiments_for_a_guarantee() -> None:
    found = experiments_for(["EW-FAILOVER"], ROOT / "experiments")
    assert [e.path.name for e in found] == ["eastwest-gateway-loss.json"]
    assert found[0].faults_by_cluster({"fault_cluster": "x", "client_cluster": "y"}) == {
        "x": ["eastwest-gateway-loss"]}


def test_an_experiment_without_the_extension_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"title": "t", "description": "d", "method": []}))
    with pytest.raises(ConfigError, match="no extensions entry named 'meshproof'"):
        load_drill_experiment(path)
