"""The backup-and-restore drill on a mesh lab: export, delete, restore, equal again; the
negative controls (the runbook's narrower weekly backup, an edited export) are violated
for the right reason and repaired; a SIGKILL after the fault is recovered; a target
that does not allow ``mesh-config-loss`` is refused before any write; and the
experiment passes (and fails for the negative control) through plain ``chaos run``.

One lab serves the module; every test leaves the mesh configuration as it found it
(checked against the lab's own export at the start).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshproof.backup import (
    FAULT,
    RUNBOOK_WEEKLY_KINDS,
    ConfigLossDrill,
    GroupKind,
    MeshExport,
    compare_objects,
    export_mesh,
    judge_backup_restore,
)
from meshproof.backup.restore import in_scope
from meshproof.catalog import load_catalog
from meshproof.clients.kube import ClusterApi
from meshproof.connections import open_connections
from meshproof.safety import Changes, DestructiveRefused
from meshproof.sli.verdict import Verdict
from meshproof.target import Target, load_target
from meshproof.timeouts import DEFAULT_TIMEOUTS as T
from meshproof.waiting import eventually
from tests.safety.support import (
    leftovers,
    recover,
    request_counts,
    target_allowing,
    writes_since,
)
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.lab]

ROOT = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).with_name("chaos")
PEER_AUTH = GroupKind("security.istio.io", "PeerAuthentication")
THRESHOLDS = load_catalog().effective_thresholds("BACKUP-RESTORE", {})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("backup"), mesh=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def allowed(lab: RunningLab) -> Path:
    """The lab's target file with ``mesh-config-loss`` in every cluster's blast radius."""
    return target_allowing(lab, (FAULT,), "backup-target")


@pytest.fixture(scope="module")
def target(allowed: Path) -> Target:
    return load_target(str(allowed))


@pytest.fixture(scope="module")
def apis(target: Target) -> dict[str, ClusterApi]:
    return open_connections(target).apis


@pytest.fixture(scope="module")
def before(apis: dict[str, ClusterApi]) -> dict[str, MeshExport]:
    """Each cluster's mesh configuration as the lab installed it."""
    return {cluster: export_mesh(api) for cluster, api in apis.items()}


@pytest.fixture(autouse=True)
def unchanged(apis: dict[str, ClusterApi], before: dict[str, MeshExport],
              allowed: Path) -> Iterator[None]:
    """Every test leaves each cluster's mesh configuration and no leftovers behind."""
    yield
    for cluster, api in apis.items():
        comparison = compare_objects(before[cluster].objects, export_mesh(api).objects)
        assert comparison.identical, f"{cluster}: {comparison.summary()}"

    def nothing_left() -> None:
        assert leftovers(allowed) == {c: [] for c in apis}

    # A deleted probe namespace may take a moment to go.
    eventually(nothing_left, timeout=T.pod_ready, interval=T.poll_interval,
               what="the drill's leftovers gone")


def test_the_lab_exports_every_mesh_kind_it_installs(before: dict[str, MeshExport],
                                                     target: Target) -> None:
    for cluster, export in before.items():
        kinds = {str(k.group_kind) for k in export.kinds}
        assert {"Gateway.networking.istio.io", "DestinationRule.networking.istio.io",
                "PeerAuthentication.security.istio.io", "Certificate.cert-manager.io",
                "ClusterIssuer.cert-manager.io"} <= kinds, cluster
        in_test = [o for o in export.objects if in_scope(o, target.namespaces)]
        assert any(o["kind"] == "PeerAuthentication" for o in in_test), cluster
        assert all("status" not in o and "uid" not in o["metadata"] for o in export.objects)
        assert not any(o["kind"] == "Secret" for o in export.objects)


def test_lost_configuration_restored_from_the_backup_equals_the_original(
        target: Target, apis: dict[str, ClusterApi], tmp_path: Path) -> None:
    for cluster, api in apis.items():
        with Changes(api, cluster, f"backup-{cluster}") as changes:
            drill = ConfigLossDrill(target=target, changes=changes, directory=tmp_path / cluster)
            drill.back_up()
            lost = drill.lose()
            assert lost and any(name.startswith("PeerAuthentication production/")
                                for name in lost)
            now = export_mesh(api)
            assert not [o for o in now.objects if in_scope(o, target.namespaces)]
            restored = drill.restore()
            assert len(restored) == len(lost) and all(r.startswith("created ") for r in restored)
            comparison = drill.compare()
            assert comparison.identical, comparison.summary()
            assert drill.repair() == []
        assert (tmp_path / cluster / "restored" / "manifest.json").exists()
        judgement = judge_backup_restore({cluster: comparison}, (1, 1), THRESHOLDS)
        assert judgement.verdict is Verdict.HELD, judgement.reason


def test_the_runbooks_weekly_backup_loses_the_peer_authentications(
        target: Target, apis: dict[str, ClusterApi], tmp_path: Path) -> None:
    cluster, api = next(iter(apis.items()))
    with Changes(api, cluster, "backup-weekly") as changes:
        drill = ConfigLossDrill(target=target, changes=changes, directory=tmp_path,
                                kinds=RUNBOOK_WEEKLY_KINDS)
        drill.back_up()
        drill.lose()
        drill.restore()
        comparison = drill.compare()
        judgement = judge_backup_restore({cluster: comparison}, (1, 1), THRESHOLDS)
        assert judgement.verdict is Verdict.VIOLATED
        assert {d.key.group_kind for d in comparison.differences} == {PEER_AUTH}
        assert all(d.change == "missing" for d in comparison.differences)
        assert "PeerAuthentication production/" in judgement.reason
        assert any(line.startswith("created PeerAuthentication") for line in drill.repair())


def test_an_edited_backup_is_caught_field_by_field(
        target: Target, apis: dict[str, ClusterApi], tmp_path: Path) -> None:
    cluster, api = list(apis.items())[-1]
    with Changes(api, cluster, "backup-edited") as changes:
        drill = ConfigLossDrill(target=target, changes=changes, directory=tmp_path)
        drill.back_up()
        path = drill.backup_dir / "peerauthentications.security.istio.io.yaml"
        document = yaml.safe_load(path.read_text())
        policy = next(o for o in document["items"]
                      if o["metadata"]["namespace"] in target.namespaces)
        policy["spec"]["mtls"]["mode"] = "PERMISSIVE"
        path.write_text(yaml.safe_dump(document))
        drill.lose()
        drill.restore()
        comparison = drill.compare()
        judgement = judge_backup_restore({cluster: comparison}, (1, 1), THRESHOLDS)
        assert judgement.verdict is Verdict.VIOLATED
        [difference] = comparison.differences
        assert difference.change == "changed"
        assert [str(f) for f in difference.fields] == ["spec.mtls.mode: 'STRICT' → 'PERMISSIVE'"]
        assert drill.repair() == [f"replaced {difference.key}"]


def test_a_target_that_does_not_allow_the_fault_is_refused_before_any_write(
        lab: RunningLab, apis: dict[str, ClusterApi], tmp_path: Path) -> None:
    refusing = load_target(str(target_allowing(lab, ("eastwest-gateway-loss",), "no-backup")))
    cluster, api = next(iter(apis.items()))
    drill = ConfigLossDrill(target=refusing, changes=Changes(api, cluster, "backup-refused"),
                            directory=tmp_path)
    drill.back_up()
    counts = request_counts(lab)
    with pytest.raises(DestructiveRefused, match="'mesh-config-loss' refused"):
        drill.lose()
    assert writes_since(lab, counts) == []


def test_a_drill_killed_after_the_fault_is_recovered(
        lab: RunningLab, allowed: Path, tmp_path: Path) -> None:
    cluster = lab.contexts[0]
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("drive_loss.py")), "--target", str(allowed),
         "--cluster", cluster, "--run-id", "backup-killed", "--directory", str(tmp_path)],
        cwd=ROOT, env=lab.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "lost", (
            proc.stderr.read() if proc.stderr else "")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    result = recover(lab, allowed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "re-created peerauthentications production/" in result.stdout


def _chaos_run(lab: RunningLab, allowed: Path, tmp_path: Path,
               **extra: str) -> tuple[dict[str, Any], str]:
    journal = tmp_path / "journal.json"
    fault, client = lab.contexts
    env = {**lab.env, "MESHPROOF_TARGET": str(allowed), "MESHPROOF_FAULT_CLUSTER": fault,
           "MESHPROOF_FAULT_CONTEXT": fault, "MESHPROOF_CLIENT_CLUSTER": client,
           "MESHPROOF_CLIENT_CONTEXT": client, "MESHPROOF_BACKUP_DIR": str(tmp_path), **extra}
    proc = subprocess.run(
        [str(CHAOS), "--no-version-check", "run", "--rollback-strategy", "always",
         "--journal-path", str(journal), str(ROOT / "experiments" / "backup-restore.json")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    return json.loads(journal.read_text()), proc.stdout[-4000:] + proc.stderr[-4000:]


def test_plain_chaos_run_holds_on_the_healthy_lab(lab: RunningLab, allowed: Path,
                                                  tmp_path: Path) -> None:
    journal, output = _chaos_run(lab, allowed, tmp_path)
    assert journal["status"] == "completed" and journal["deviated"] is False, output
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    assert all(r["status"] == "succeeded" for r in runs.values()), output
    verdict = runs["backup-restore-verdict"]["output"]
    assert verdict["verdict"] == "held", verdict
    assert runs["compare-with-the-original"]["output"]["differences"] == []
    assert runs["requests-after-the-restore"]["output"]["good"] == 20
    assert (tmp_path / lab.contexts[0] / "backup" / "manifest.json").exists()


def test_plain_chaos_run_with_the_weekly_backup_is_violated(lab: RunningLab, allowed: Path,
                                                            tmp_path: Path) -> None:
    journal, output = _chaos_run(lab, allowed, tmp_path,
                                 MESHPROOF_BACKUP_KINDS="gateway,virtualservice,destinationrule")
    assert journal["deviated"] is True, output
    verdict = next(r for r in journal["run"]
                   if r["activity"]["name"] == "backup-restore-verdict")
    assert verdict["status"] == "failed"
    assert "violated: BACKUP-RESTORE" in verdict["exception"][-1]
    assert "PeerAuthentication production/" in verdict["exception"][-1]


def test_the_drill_scenario_holds_with_each_cluster_as_the_fault_cluster(
        lab: RunningLab, allowed: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "features/backup.feature", "--target", str(allowed),
         "-p", "no:cacheprovider", "-q"],
        cwd=ROOT, env=lab.env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout
