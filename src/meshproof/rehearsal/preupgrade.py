"""``meshproof run --profile preupgrade``: analysis and rehearsal first, then the checks, then a
baseline.

1. Config analysis (``meshproof.analysis``) over the live objects of every
   cluster: each finding with its severity, object, message and fix.
2. Runbook rehearsal (``meshproof.rehearsal.runbook``): the read-only commands,
   and the commands that no longer exist with their current equivalents.
3. The preupgrade profile: every guarantee tagged ``preupgrade`` in the
   catalog - the nightly ones and the drills the target's blast radius allows.
4. The run's report directory is saved as the baseline (``--baseline-dir``,
   default ``.meshproof/baseline``), to compare the run after the upgrade with:
   ``meshproof compare .meshproof/baseline reports``.

Steps 1 and 2 go to ``preupgrade.json`` in the report directory and to the
terminal; they do not change the exit code (CONFIG-VALID, run in step 3,
judges the analysis errors).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from meshproof.analysis import ERROR, Finding, analyze
from meshproof.clients.kube import ClusterApi
from meshproof.errors import ConfigError
from meshproof.rehearsal.runbook import Rehearsal, rehearse, render_rehearsal
from meshproof.target import Target

__all__ = ["DEFAULT_BASELINE_DIR", "preupgrade", "preupgrade_command", "save_baseline"]

DEFAULT_BASELINE_DIR = Path(".meshproof/baseline")


def save_baseline(report_dir: Path, baseline_dir: Path) -> Path:
    """Copy the run's reports to ``baseline_dir``, replacing an earlier baseline there.

    A directory that holds anything but a meshproof report is never replaced.
    """
    if baseline_dir.resolve() == report_dir.resolve():
        return baseline_dir
    if baseline_dir.exists():
        if not (baseline_dir / "report.json").is_file():
            if baseline_dir.is_dir() and not any(baseline_dir.iterdir()):
                baseline_dir.rmdir()
            else:
                raise ConfigError(f"--baseline-dir {baseline_dir} exists and is not a saved "
                                  "baseline (no report.json); give an empty or new directory")
        else:
            shutil.rmtree(baseline_dir)
    baseline_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(report_dir, baseline_dir)
    return baseline_dir


def _finding_line(f: Finding) -> str:
    prefix = "[ analysis ERROR ]" if f.level == ERROR else "[ analysis warning ]"
    fix = f" - fix: {f.fix}" if f.fix else ""
    return f"{prefix} {f.cluster}: {f.object}: {f.message} [{f.code}]{fix}\n"


def preupgrade(target: Target, apis: dict[str, ClusterApi], report_dir: Path,
               baseline_dir: Path, run_checks: Callable[[], int], *, out: IO[str]) -> int:
    """Analysis, rehearsal, the preupgrade checks (``run_checks``), then the baseline."""
    findings = analyze(apis, list(target.namespaces))
    for f in findings:
        out.write(_finding_line(f))
    errors = sum(1 for f in findings if f.level == ERROR)
    out.write(f"[ analysis ] {errors} errors, {len(findings) - errors} warnings\n")
    rehearsal: Rehearsal = rehearse(target)
    for line in render_rehearsal(rehearsal).splitlines():
        out.write(f"[ rehearse ] {line}\n")
    out.flush()
    code = run_checks()
    report_dir.mkdir(parents=True, exist_ok=True)
    document = {"schema": "meshproof.preupgrade/v1",
                "analysis": [f.to_dict() for f in findings],
                "rehearsal": rehearsal.to_dict()}
    (report_dir / "preupgrade.json").write_text(json.dumps(document, indent=2) + "\n",
                                                encoding="utf-8")
    saved = save_baseline(report_dir, baseline_dir)
    out.write(f"[ baseline ] saved to {saved}; after the upgrade: meshproof compare {saved} "
              "<report dir of the new run>\n")
    return code


def preupgrade_command(target: Target, report_dir: Path, baseline_dir: Path | None,
                       run_checks: Callable[[], int], *, out: IO[str] | None = None) -> int:
    """``meshproof run --profile preupgrade`` on a reachable target."""
    from meshproof.connections import open_connections

    return preupgrade(target, open_connections(target).apis, report_dir,
                      baseline_dir or DEFAULT_BASELINE_DIR, run_checks, out=out or sys.stdout)
