"""Runbook rehearsal: run the runbook's read-only commands against a target.

The commands come from ``commands.yaml`` next to this module. Each read-only
command runs once per cluster of the target, with that cluster's kubeconfig
context, where its tool is installed; a missing tool is said, never guessed
around ("not run: istioctl not installed"). Commands that no longer exist are
listed with what to run instead and the upstream source that says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshproof.errors import ConfigError
from meshproof.report.redact import Redactor, secrets_of
from meshproof.target import Target

__all__ = [
    "COMMANDS_FILE",
    "CommandResult",
    "Rehearsal",
    "RemovedCommand",
    "RunbookCommand",
    "load_commands",
    "rehearse",
    "rehearse_command",
    "render_rehearsal",
]

COMMANDS_FILE = Path(__file__).with_name("commands.yaml")
_OUTPUT_LINES = 20
"""Lines of a command's output kept in the report (the rest is counted, not kept)."""


@dataclass(frozen=True, slots=True)
class RunbookCommand:
    """A read-only command of the runbook."""

    tool: str
    args: tuple[str, ...]
    lines: tuple[int, ...]

    @property
    def text(self) -> str:
        return " ".join([self.tool, *self.args])


@dataclass(frozen=True, slots=True)
class RemovedCommand:
    """A runbook command that current tools no longer have."""

    command: str
    lines: tuple[int, ...]
    why: str
    instead: str
    sources: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """One command on one cluster: ``ok``, ``failed`` or ``not run`` (with the reason)."""

    command: str
    cluster: str
    lines: tuple[int, ...]
    status: str
    exit_code: int | None = None
    duration_s: float = 0.0
    output: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rehearsal:
    """Everything ``meshproof rehearse`` found."""

    target: str
    results: tuple[CommandResult, ...]
    removed: tuple[RemovedCommand, ...]
    needs_input: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def failed(self) -> tuple[CommandResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (``rehearsal.json``)."""
        return {"schema": "meshproof.rehearsal/v1", "target": self.target,
                "results": [asdict(r) for r in self.results],
                "removed": [asdict(r) for r in self.removed],
                "needs_input": list(self.needs_input)}


def load_commands(
    path: Path = COMMANDS_FILE,
) -> tuple[list[RunbookCommand], list[RemovedCommand], list[dict[str, Any]]]:
    """The read-only, removed and needs-input commands of the data file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        read_only = [RunbookCommand(str(c["tool"]), tuple(map(str, c["args"])),
                                    tuple(c["lines"])) for c in data["read_only"]]
        removed = [RemovedCommand(str(c["command"]), tuple(c["lines"]), " ".join(c["why"].split()),
                                  " ".join(c["instead"].split()), tuple(c["sources"]))
                   for c in data["removed"]]
        needs = [dict(c) for c in data.get("needs_input") or []]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"runbook command list {path} is unreadable: {exc}") from exc
    return read_only, removed, needs


Runner = Callable[[Sequence[str], float], subprocess.CompletedProcess[str]]


def _run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          check=False, stdin=subprocess.DEVNULL)


def _excerpt(text: str) -> str:
    lines = text.rstrip().splitlines()
    kept = lines[:_OUTPUT_LINES]
    if len(lines) > _OUTPUT_LINES:
        kept.append(f"... ({len(lines) - _OUTPUT_LINES} more lines)")
    return "\n".join(kept)


def rehearse(target: Target, *, path: Path = COMMANDS_FILE, run: Runner = _run,
             which: Callable[[str], str | None] | None = None) -> Rehearsal:
    """Run every read-only runbook command on every cluster of ``target``.

    ``which`` finds a tool's executable (default ``shutil.which``); ``run`` runs a command.
    """
    which = which or shutil.which
    commands, removed, needs = load_commands(path)
    redactor = Redactor(secrets_of(target))
    timeout = target.resolved_timeouts.api_request
    results: list[CommandResult] = []
    for command in commands:
        tool = which(command.tool)
        for cluster in target.clusters:
            if tool is None:
                results.append(CommandResult(command.text, cluster.name, command.lines,
                                             "not run", reason=f"{command.tool} not installed"))
                continue
            argv = [tool, "--context", cluster.context]
            if cluster.kubeconfig is not None:
                argv += ["--kubeconfig", str(cluster.kubeconfig)]
            argv += command.args
            started = time.monotonic()
            try:
                done = run(argv, timeout)
            except subprocess.TimeoutExpired:
                results.append(CommandResult(
                    command.text, cluster.name, command.lines, "failed",
                    duration_s=round(time.monotonic() - started, 3),
                    reason=f"no answer within {timeout:g} s"))
                continue
            output = redactor.text(_excerpt(done.stdout if done.returncode == 0
                                            else done.stderr or done.stdout))
            first = output.splitlines()[0] if output else ""
            results.append(CommandResult(
                command.text, cluster.name, command.lines,
                "ok" if done.returncode == 0 else "failed", exit_code=done.returncode,
                duration_s=round(time.monotonic() - started, 3), output=output,
                reason="" if done.returncode == 0 else first))
    return Rehearsal(target.name, tuple(results), tuple(removed), tuple(needs))


def render_rehearsal(rehearsal: Rehearsal) -> str:
    """One line per command and cluster, then the removed commands, then a summary."""
    out = []
    for r in rehearsal.results:
        lines = ", ".join(map(str, r.lines))
        if r.status == "ok":
            out.append(f"[ ok ] {r.cluster}: {r.command} (runbook {lines})")
        elif r.status == "failed":
            out.append(f"[ FAILED ] {r.cluster}: {r.command} (runbook {lines}): {r.reason}")
        else:
            out.append(f"[ not run ] {r.cluster}: {r.command} (runbook {lines}): {r.reason}")
    for n in rehearsal.needs_input:
        out.append(f"[ not run ] {n['command']} (runbook {', '.join(map(str, n['lines']))}): "
                   "needs a pod or service name")
    for m in rehearsal.removed:
        out.append(f"[ removed ] {m.command} (runbook {', '.join(map(str, m.lines))}): {m.why} "
                   f"Instead: {m.instead}. Source: {', '.join(m.sources)}")
    counts = {s: sum(1 for r in rehearsal.results if r.status == s)
              for s in ("ok", "failed", "not run")}
    out.append(f"{counts['ok']} ok, {counts['failed']} failed, {counts['not run']} not run; "
               f"{len(rehearsal.removed)} runbook commands no longer exist")
    return "\n".join(out) + "\n"


def rehearse_command(target: Target, report_dir: Path | None) -> int:
    """``meshproof rehearse``: 0 when every command that ran succeeded, 1 when one failed."""
    rehearsal = rehearse(target)
    sys.stdout.write(render_rehearsal(rehearsal))
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "rehearsal.json").write_text(
            json.dumps(rehearsal.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 1 if rehearsal.failed else 0
