"""The user-facing CI workflows build the kind mesh, run the right profile against it, and
always upload the reports and tear the clusters down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster_manifests import REPO_ROOT

pytestmark = pytest.mark.static

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
TARGET = ".meshproof/kind/target.yaml"


def _load(name: str) -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); put it back.
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True)
    return data  # type: ignore[no-any-return]


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    assert isinstance(job["timeout-minutes"], int), "every job is bounded in time"
    return job["steps"]  # type: ignore[no-any-return]


def _index(steps: list[dict[str, Any]], text: str) -> int:
    hits = [i for i, s in enumerate(steps) if text in s.get("run", "")]
    assert hits, f"no step runs {text!r}"
    return hits[0]


@pytest.mark.parametrize(("name", "profile"), [("nightly.yml", "nightly"), ("drill.yml", "drill")])
def test_workflow_runs_the_profile_on_kind(name: str, profile: str) -> None:
    steps = _steps(_load(name))
    up = _index(steps, "make kind-up")
    run = _index(steps, f"meshproof run --profile {profile} --target {TARGET}")
    down = _index(steps, "make kind-down")
    assert up < run < down
    assert steps[down].get("if") == "always()"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload.get("if") == "always()" and upload["with"]["path"] == "reports/"
    assert "--report-dir reports" in steps[run]["run"]


def test_triggers() -> None:
    nightly = _load("nightly.yml")["on"]
    assert nightly["schedule"] and "workflow_dispatch" in nightly
    drill = _load("drill.yml")["on"]
    (cron,) = drill["schedule"]
    day, month, weekday = cron["cron"].split()[2:]
    assert (day, month, weekday) == ("1", "*", "*"), "the drill runs monthly"
    assert "faults" in drill["workflow_dispatch"]["inputs"]


@pytest.mark.parametrize("name", ["nightly.yml", "drill.yml"])
def test_actions_are_pinned_and_permissions_minimal(name: str) -> None:
    workflow = _load(name)
    assert workflow["permissions"] == {"contents": "read"}
    for step in _steps(workflow):
        uses = step.get("uses")
        if uses:
            ref = uses.partition("@")[2]
            assert ref and ref not in ("main", "master"), f"{name}: {uses} is not pinned"


def test_drill_blast_radius_comes_from_input_or_variable() -> None:
    (job,) = _load("drill.yml")["jobs"].values()
    allow = job["env"]["MESHPROOF_KIND_ALLOW_FAULTS"]
    assert "inputs.faults" in allow and "vars.MESHPROOF_DRILL_FAULTS" in allow


def test_workflows_install_the_pinned_tools() -> None:
    for name in ("nightly.yml", "drill.yml"):
        text = Path(WORKFLOWS / name).read_text()
        assert "source clusters/versions.env" in text
        assert "${KIND_VERSION}" in text and '"$ISTIO_VERSION"' in text
