"""The blast radius is checked before anything is written: by the runner for a whole drill
profile, and by each fault action of the extension (no cluster is contacted: the target's
API servers here do not exist, so a request would fail differently)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from meshproof.chaos import actions, state
from meshproof.chaos.running import require_drills_allowed
from meshproof.errors import ConfigError
from meshproof.runner import run_profile
from meshproof.safety import DestructiveRefused
from meshproof.target import load_target

ROOT = Path(__file__).resolve().parents[2]
LAB_LIKE = ROOT / "tests" / "data" / "targets" / "good" / "lab-like.yaml"
ALL_FAULTS = ["eastwest-gateway-loss", "istiod-outage", "http-fault", "circuit-breaker-trip"]


@pytest.fixture(autouse=True)
def no_drill_left() -> Iterator[None]:
    yield
    state.finish()


def allowing(tmp_path: Path, faults: list[str]) -> Path:
    doc = yaml.safe_load(LAB_LIKE.read_text())
    doc["clusters"] = [{**c, "kubeconfig": str((LAB_LIKE.parent / c["kubeconfig"]).resolve())}
                       for c in doc["clusters"]]
    doc["destructive"] = {"allowed": {c["name"]: faults for c in doc["clusters"]}}
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_drill_profile_outside_the_blast_radius_is_refused_before_pytest(
        tmp_path: Path) -> None:
    target = load_target(str(allowing(tmp_path, ["http-fault"])))
    with pytest.raises(DestructiveRefused, match="nothing was changed"):
        run_profile(target, "drill", tmp_path / "reports")
    assert not (tmp_path / "reports").exists()


def test_a_target_allowing_every_fault_gets_every_drill(tmp_path: Path) -> None:
    target = load_target(str(allowing(tmp_path, ALL_FAULTS)))
    found = require_drills_allowed(target, ["EW-FAILOVER", "CP-RECOVERY", "CIRCUIT-BREAK"],
                                   ROOT / "experiments")
    assert {e.path.name for e in found} == {
        "eastwest-gateway-loss.json", "istiod-outage.json", "circuit-breaker-trip.json"}


@pytest.mark.parametrize(("action", "arguments"), [
    (actions.lose_east_west_gateway, {"cluster": "aws-eks"}),
    (actions.stop_istiod, {"cluster": "gcp-gke"}),
    (actions.add_http_fault, {"cluster": "aws-eks", "namespace": "sample",
                              "virtual_service": "helloworld", "delay_ms": 200}),
])
def test_each_fault_action_refuses_outside_the_blast_radius(
        tmp_path: Path, action: object, arguments: dict[str, object]) -> None:
    config = {"meshproof_target": str(allowing(tmp_path, ["circuit-breaker-trip"]))}
    with pytest.raises(DestructiveRefused, match="refused"):
        action(**arguments, configuration=config)  # type: ignore[operator]
    drill = state.current()
    assert drill is not None and drill.faults == [] and drill.changes == {}


def test_an_experiment_without_a_target_says_how_to_give_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(state.TARGET_ENV, raising=False)
    with pytest.raises(ConfigError, match="set MESHPROOF_TARGET"):
        state.drill_for({})
