"""What a drill run hands its experiment, and how a journal's failure is told (pure logic)."""

from __future__ import annotations

from pathlib import Path

from meshproof.chaos.running import _failure, drill_environment, kubeconfig_environment
from meshproof.target import load_target

ROOT = Path(__file__).resolve().parents[2]
LAB_LIKE = ROOT / "tests" / "data" / "targets" / "good" / "lab-like.yaml"


def test_the_experiment_gets_target_roles_contexts_and_one_kubeconfig() -> None:
    target = load_target(str(LAB_LIKE))
    env = drill_environment(target, {"fault_cluster": "gcp-gke", "client_cluster": "aws-eks"},
                            "r1")
    kubeconfig = str((LAB_LIKE.parent / "../files/kubeconfig").resolve())
    assert env == {
        "MESHPROOF_TARGET": str(LAB_LIKE.resolve()), "MESHPROOF_RUN_ID": "r1",
        "MESHPROOF_FAULT_CLUSTER": "gcp-gke", "MESHPROOF_FAULT_CONTEXT": "gcp-gke",
        "MESHPROOF_CLIENT_CLUSTER": "aws-eks", "MESHPROOF_CLIENT_CONTEXT": "aws-eks",
        "KUBECONFIG": kubeconfig}
    assert kubeconfig_environment(target) == {"KUBECONFIG": kubeconfig}


def test_a_journal_failure_names_the_activity_or_the_steady_state() -> None:
    failed_activity = {"status": "completed", "run": [
        {"activity": {"name": "ok"}, "status": "succeeded"},
        {"activity": {"name": "time-to-ejection"}, "status": "failed",
         "exception": ["Traceback ...\n", "ActivityFailed: no stats\n"]}]}
    assert _failure(failed_activity) == "time-to-ejection: ActivityFailed: no stats"
    steady = {"status": "failed", "run": [], "steady_states": {"before": {"probes": [
        {"activity": {"name": "gateway-available"}, "tolerance_met": False, "output": False}]}}}
    assert _failure(steady) == "steady state before: gateway-available not met: output False"
    assert _failure({"status": "aborted", "run": []}) == "the experiment ended aborted"
