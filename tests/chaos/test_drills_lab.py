"""The drill experiments on the lab: plain ``chaos run`` and ``meshproof run --profile drill``
pass on a healthy lab, ``no-outlier-detection`` violates EW-FAILOVER (and only it), and a
target whose blast radius does not allow the faults is refused before any write.

One lab serves the module: every experiment undoes its changes (checked after each), and
the break switch is healed before the next test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from meshproof.chaos import actions, state
from meshproof.chaos import probes as chaos_probes
from meshproof.timeouts import DEFAULT_TIMEOUTS as T
from meshproof.waiting import eventually
from tests.safety.support import leftovers, request_counts, writes_since
from tests.support.lab import RunningLab, lab_command, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.prometheus]

ROOT = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).with_name("chaos")
HOLD_S = "3"
"""Each fault is held this long after it is detected: enough for the window's traffic."""
EXPERIMENTS = ("eastwest-gateway-loss.json", "istiod-outage.json", "circuit-breaker-trip.json")
DRILLED = {"EW-FAILOVER", "CP-RECOVERY", "CIRCUIT-BREAK"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("drills"), mesh=True) as lab:
        yield lab


def chaos_env(lab: RunningLab, fault: str, client: str) -> dict[str, str]:
    """The environment experiments/README.md documents for plain ``chaos run``."""
    return {**lab.env, "MESHPROOF_TARGET": str(lab.target), "MESHPROOF_FAULT_HOLD_S": HOLD_S,
            "MESHPROOF_FAULT_CLUSTER": fault, "MESHPROOF_FAULT_CONTEXT": fault,
            "MESHPROOF_CLIENT_CLUSTER": client, "MESHPROOF_CLIENT_CONTEXT": client}


def chaos_run(lab: RunningLab, name: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    journal = tmp_path / f"journal-{name}"
    proc = subprocess.run(
        [str(CHAOS), "--no-version-check", "run", "--rollback-strategy", "always",
         "--journal-path", str(journal), str(ROOT / "experiments" / name)],
        env=chaos_env(lab, lab.contexts[0], lab.contexts[1]), cwd=tmp_path,
        capture_output=True, text=True, timeout=600, check=False)
    return json.loads(journal.read_text()), proc.stdout[-4000:] + proc.stderr[-4000:]


def reported(proc: subprocess.CompletedProcess[str], reports: Path
             ) -> tuple[int, dict[str, Any], str]:
    """A run's exit code, its report.json (empty when none was written) and its output."""
    path = reports / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    return proc.returncode, report, proc.stdout + proc.stderr


def drill(lab: RunningLab, reports: Path, target: Path | None = None
          ) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "meshproof", "run", "--target", str(target or lab.target),
         "--profile", "drill", "--report-dir", str(reports)],
        cwd=ROOT, env={**lab.env, "MESHPROOF_FAULT_HOLD_S": HOLD_S}, capture_output=True,
        text=True, timeout=900, check=False)
    return reported(proc, reports)


def drill_scenarios(lab: RunningLab, reports: Path, guarantees: set[str]
                    ) -> tuple[int, dict[str, Any], str]:
    """The drill scenarios of ``guarantees`` alone, through plain pytest (README "Tests"):
    the drill profile's marker with the guarantee ids as keywords. The report judges the
    others not measurable (not run)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "features", "--target", str(lab.target), "-m", "drill",
         "-k", " or ".join(sorted(guarantees)), "--meshproof-report", str(reports),
         "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, env={**lab.env, "MESHPROOF_FAULT_HOLD_S": HOLD_S,
                       "MESHPROOF_RUN_ID": reports.name},
        capture_output=True, text=True, timeout=900, check=False)
    return reported(proc, reports)


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {g["id"]: g["verdict"] for g in report.get("guarantees") or []}


def assert_clean(lab: RunningLab) -> None:
    """No undo record, lock or probe namespace left (a deleted namespace may take a moment
    to go); the faulted deployments are back."""
    def nothing_left() -> None:
        assert leftovers(lab.target) == {c: [] for c in lab.contexts}

    eventually(nothing_left, timeout=T.pod_ready, interval=T.poll_interval,
               what="the drill's leftovers gone")
    for context in lab.contexts:
        for name in ("istiod", "istio-eastwestgateway"):
            out = lab.kubectl("get", "deployment", name, "-n", "istio-system", "-o", "json",
                              context=context)
            assert json.loads(out.stdout)["spec"]["replicas"] == 1, (context, name)


def test_a_drill_the_target_does_not_allow_is_refused_before_any_write(
        lab: RunningLab, tmp_path: Path) -> None:
    doc = yaml.safe_load(lab.target.read_text())
    doc["destructive"] = {"allowed": {lab.contexts[0]: ["http-fault"]}}
    narrow = lab.root / "narrow-blast-radius.yaml"
    narrow.write_text(yaml.safe_dump(doc, sort_keys=False))
    before = request_counts(lab)
    code, report, output = drill(lab, tmp_path / "reports", target=narrow)
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "refused" in lines[0] and "nothing was changed" in lines[0], lines
    assert report == {}
    assert writes_since(lab, before) == []


def test_http_fault_is_injected_and_restored_to_the_original_routes(lab: RunningLab) -> None:
    config = {"meshproof_target": str(lab.target)}
    cluster = lab.contexts[0]
    drill_state = state.drill_for(config)
    path = "/apis/networking.istio.io/v1/namespaces/production/virtualservices/catalog"
    api = drill_state.connections.api(cluster)
    original = api.get(path)["spec"]
    probes = drill_state.probes()

    def statuses() -> set[int]:
        answer = probes.request(cluster, "mesh", {"url": "http://catalog.production:5000/",
                                                  "count": 4})
        return {int(r["status"]) for r in answer["results"]}

    try:
        actions.add_http_fault(cluster, "production", "catalog", abort_status=503,
                               configuration=config)
        assert api.get(path)["metadata"]["annotations"], "the change is not marked"

        def aborted() -> None:
            assert statuses() == {503}

        eventually(aborted, timeout=T.config_propagation, interval=T.poll_interval,
                   what="the abort fault in force")
    finally:
        undone = actions.restore(cluster, configuration=config)["undone"]
        drill_state.close()
        state.finish()
    assert len(undone) == 1 and "virtualservices production/catalog" in undone[0]
    assert api.get(path)["spec"] == original
    assert_clean(lab)


def test_prometheus_probes_use_the_targets_credentials(lab: RunningLab) -> None:
    config = {"meshproof_target": str(lab.target)}
    try:
        for cluster in lab.contexts:
            assert chaos_probes.sli_value(cluster, 'sum(up{job="kubernetes-pods"})',
                                          configuration=config) > 0
            assert chaos_probes.alert_fires(cluster, "IstiodDown", configuration=config) is False
        with pytest.raises(ActivityFailed, match="has no result"):
            chaos_probes.sli_value(lab.contexts[0], 'up{job="no-such-job"}', configuration=config)
    finally:
        state.finish()


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_plain_chaos_run_passes_on_the_healthy_lab(lab: RunningLab, name: str,
                                                   tmp_path: Path) -> None:
    journal, output = chaos_run(lab, name, tmp_path)
    assert journal["status"] == "completed" and journal["deviated"] is False, output
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    assert all(r["status"] == "succeeded" for r in runs.values()), output
    verdict = next(r["output"] for n, r in runs.items() if n.endswith("-verdict"))
    assert verdict["verdict"] == "held", verdict
    assert_clean(lab)


def test_without_outlier_detection_chaos_run_shows_ew_failover_violated(
        lab: RunningLab, tmp_path: Path) -> None:
    assert lab_command(lab.root, "break", "no-outlier-detection").returncode == 0
    try:
        journal, output = chaos_run(lab, "eastwest-gateway-loss.json", tmp_path)
    finally:
        assert lab_command(lab.root, "heal", "no-outlier-detection").returncode == 0
    assert journal["deviated"] is True, output
    verdict = next(r for r in journal["run"] if r["activity"]["name"] == "ew-failover-verdict")
    assert verdict["status"] == "failed"
    assert "violated: EW-FAILOVER: no ejection" in verdict["exception"][-1]
    assert_clean(lab)


@pytest.mark.e2e
def test_the_drill_profile_holds_on_the_healthy_lab(lab: RunningLab, tmp_path: Path) -> None:
    code, report, output = drill(lab, tmp_path / "reports")
    got = verdicts(report)
    assert {g: got.get(g) for g in DRILLED} == dict.fromkeys(DRILLED, "held"), output[-5000:]
    # other drills (BACKUP-RESTORE) share the profile: the exit code follows all verdicts
    assert code == (1 if "violated" in got.values() else 0), output[-3000:]
    drills = {g["id"]: g for g in report["guarantees"] if g["id"] in DRILLED}
    phases = {e["phase"] for e in drills["EW-FAILOVER"]["drill"]["events"]}
    assert {"fault-start", "detection", "ejection", "fault-end", "recovery",
            "verdict"} <= phases
    assert all(g["load"] and g["load"][0]["requests"] > 0
               for gid, g in drills.items() if gid != "CIRCUIT-BREAK")
    assert_clean(lab)


@pytest.mark.e2e
def test_no_outlier_detection_violates_exactly_ew_failover(lab: RunningLab,
                                                          tmp_path: Path) -> None:
    """The negative control of the drills that share the east-west path. The whole profile
    held on this lab just before; this run needs only the drilled guarantees' scenarios (the
    profile's other drills take two thirds of its six minutes and judge nothing here)."""
    assert lab_command(lab.root, "break", "no-outlier-detection").returncode == 0
    try:
        code, report, output = drill_scenarios(lab, tmp_path / "reports", DRILLED)
    finally:
        assert lab_command(lab.root, "heal", "no-outlier-detection").returncode == 0
    got = verdicts(report)
    assert {g: got.get(g) for g in DRILLED} == {
        "EW-FAILOVER": "violated", "CP-RECOVERY": "held", "CIRCUIT-BREAK": "held"}, output[-5000:]
    assert code == 1
    assert_clean(lab)
