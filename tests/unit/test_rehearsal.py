"""Runbook rehearsal: the command list, running it, and the preupgrade baseline."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from meshproof.errors import ConfigError
from meshproof.rehearsal import load_commands, rehearse, render_rehearsal
from meshproof.rehearsal import preupgrade as preupgrade_module
from meshproof.rehearsal.preupgrade import preupgrade, save_baseline
from meshproof.target import load_target
from tests.support.runner import LAB_LIKE

MUTATING = {"apply", "edit", "patch", "delete", "rollout", "scale", "label", "annotate",
            "create", "install", "upgrade", "run", "debug", "create-remote-secret"}


def test_the_command_list_is_read_only_and_cites_its_sources() -> None:
    read_only, removed, needs = load_commands()
    assert read_only and removed and needs
    for command in read_only:
        assert command.tool in ("kubectl", "istioctl")
        assert not MUTATING & set(command.args), command.text
        assert command.lines and all(0 < line < 900 for line in command.lines)
    for gone in removed:
        assert gone.instead and gone.why
        assert gone.sources and all(s.startswith("https://") for s in gone.sources)
    names = " ".join(g.command for g in removed)
    for stale in ("istioctl operator init", "istioctl authn tls-check", "kubectl get meshconfig"):
        assert stale in names


def completed(code: int, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], code, out, err)


def test_a_missing_tool_is_said_and_nothing_runs() -> None:
    target = load_target(LAB_LIKE)
    ran: list[Sequence[str]] = []

    def run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        ran.append(argv)
        return completed(0, "ok")

    rehearsal = rehearse(target, run=run, which=lambda tool: None)
    assert ran == []
    assert {r.status for r in rehearsal.results} == {"not run"}
    assert {r.reason for r in rehearsal.results} == {"kubectl not installed",
                                                     "istioctl not installed"}
    first = render_rehearsal(rehearsal).splitlines()[0]
    assert first.startswith("[ not run ] ") and first.endswith(": kubectl not installed")


def test_each_command_runs_once_per_cluster_with_its_context() -> None:
    target = load_target(LAB_LIKE)
    ran: list[list[str]] = []

    def run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        ran.append(list(argv))
        if "meshconfig" in argv or "top" in argv:
            return completed(1, "", "error: the server doesn't have a resource type \"top\"")
        return completed(0, "\n".join(f"line {i}" for i in range(50)))

    rehearsal = rehearse(target, run=run,
                         which=lambda tool: f"/usr/bin/{tool}" if tool == "kubectl" else None)
    contexts = {c.context for c in target.clusters}
    kubectl_runs = [argv for argv in ran if argv[0] == "/usr/bin/kubectl"]
    read_only, _, _ = load_commands()
    kubectl_commands = [c for c in read_only if c.tool == "kubectl"]
    assert len(kubectl_runs) == len(kubectl_commands) * len(contexts)
    assert {argv[2] for argv in kubectl_runs} == contexts
    assert all(argv[1] == "--context" for argv in kubectl_runs)
    failed = rehearsal.failed
    assert failed and all("kubectl top" in r.command for r in failed)
    assert failed[0].reason.startswith("error: the server")
    ok = next(r for r in rehearsal.results if r.status == "ok")
    assert ok.output.endswith("(30 more lines)")
    text = render_rehearsal(rehearsal)
    assert "[ FAILED ]" in text and "[ removed ] istioctl operator init" in text


def test_rehearse_command_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from meshproof.cli import main

    monkeypatch.setattr("meshproof.rehearsal.runbook.shutil.which", lambda tool: None)
    assert main(["rehearse", "--target", str(LAB_LIKE), "--report-dir", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "rehearsal.json").read_text())
    assert document["schema"] == "meshproof.rehearsal/v1"
    assert document["removed"]
    assert "no longer exist" in capsys.readouterr().out
    assert main(["rehearse", "--target", str(tmp_path / "missing.yaml")]) == 2


def test_save_baseline_replaces_only_an_earlier_baseline(tmp_path: Path) -> None:
    run = tmp_path / "reports"
    run.mkdir()
    (run / "report.json").write_text("{}")
    baseline = tmp_path / "baseline"
    save_baseline(run, baseline)
    assert (baseline / "report.json").is_file()
    (run / "index.html").write_text("new")
    save_baseline(run, baseline)
    assert (baseline / "index.html").read_text() == "new"
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a saved baseline"):
        save_baseline(run, other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_preupgrade_analyses_rehearses_runs_then_saves_the_baseline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = load_target(LAB_LIKE)
    order: list[str] = []
    real = preupgrade_module.rehearse

    def rehearse_offline(t: object) -> object:
        order.append("rehearse")
        return real(target, which=lambda tool: None)

    monkeypatch.setattr(preupgrade_module, "rehearse", rehearse_offline)
    report_dir, baseline = tmp_path / "reports", tmp_path / "base"

    def run_checks() -> int:
        order.append("checks")
        report_dir.mkdir()
        (report_dir / "report.json").write_text("{}")
        return 1

    out = io.StringIO()
    code = preupgrade(target, {}, report_dir, baseline, run_checks, out=out)
    assert code == 1
    assert order == ["rehearse", "checks"]
    assert json.loads((baseline / "preupgrade.json").read_text())["analysis"] == []
    assert (baseline / "report.json").is_file()
    text = out.getvalue()
    assert text.index("[ analysis ]") < text.index("[ rehearse ]") < text.index("[ baseline ]")


def test_baseline_dir_goes_only_with_preupgrade(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from meshproof.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["run", "--target", str(LAB_LIKE), "--profile", "nightly",
              "--baseline-dir", str(tmp_path)])
    assert exited.value.code == 2
    assert "--baseline-dir goes with --profile preupgrade" in capsys.readouterr().err
