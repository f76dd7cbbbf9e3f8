"""Running a profile against a target: the seam the CLI calls.

``run_profile`` runs the profile's Gherkin features with pytest in a subprocess
(``meshproof.run.plan``), follows its results file to show progress
(``meshproof.run.console``), turns the scenarios into one verdict per
guarantee and writes the reports (``meshproof.report``).

Exit codes: 1 when a guarantee was violated; otherwise 2 when the run was
faulty (a check crashed, pytest could not run the features); otherwise 1 when
``require_all`` and a guarantee was not measurable; otherwise 0. When nothing
could be measured at all, or pytest itself failed, the reports are still
written and a ``MeshproofError`` says why (the CLI prints it and exits 2).
Interrupted (Ctrl-C, SIGTERM), it stops pytest so teardowns run, writes the
reports of what finished and re-raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from meshproof.errors import MeshproofError
from meshproof.report import write_reports
from meshproof.report.model import Report, RunFacts, build_report
from meshproof.report.redact import Redactor, secrets_of
from meshproof.run.console import Console
from meshproof.run.plan import RUN_ID_ENV, RunPlan, make_plan
from meshproof.run.results import ResultsTail, ScenarioResult
from meshproof.run.verdicts import Outcome
from meshproof.target import Target

__all__ = ["decide_exit_code", "recover", "run_profile"]

EXIT_HELD = 0
EXIT_VIOLATED = 1
EXIT_COULD_NOT_RUN = 2

# pytest's own exit codes that mean the features could not be run at all
# (interrupted, internal error, usage error); 1 (tests failed) and 5 (none ran) are results.
_PYTEST_FAULTY = {2: "interrupted or collection errors", 3: "internal error", 4: "usage error"}
_PYTEST_NO_TESTS = 5
_PYTEST_INTERRUPTED = 2
_UNFINISHED = "the run stopped before this check finished"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def decide_exit_code(report: Report, *, faulty: bool = False) -> int:
    """1 violated · 2 faulty run or a crashed check · 1 not measurable under require-all · 0."""
    if report.summary.violated:
        return EXIT_VIOLATED
    if faulty or report.could_not_run:
        return EXIT_COULD_NOT_RUN
    if report.run.require_all and report.summary.not_measurable:
        return EXIT_VIOLATED
    return EXIT_HELD


def _run_pytest(
    plan: RunPlan,
    results: Path,
    cucumber: Path,
    log: Path,
    console: Console,
    events: list[dict[str, Any]],
) -> int:
    """Run the features, appending and showing events as they arrive; pytest's exit code.

    Interrupted, it stops pytest (teardowns run), keeps the events so far and re-raises.
    """
    tail = ResultsTail(results)
    interval = plan.target.resolved_timeouts.poll_interval
    # The steps label everything they create or change with the run's id.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", RUN_ID_ENV: plan.run_id,
           **_drill_environment(plan)}
    with log.open("wb") as log_stream:
        # Its own session: a Ctrl-C at the terminal reaches only the runner, which then
        # asks pytest once to stop, so its teardowns (rollbacks) get to run.
        proc = subprocess.Popen(
            plan.pytest_command(results, cucumber),
            cwd=plan.root,
            stdout=log_stream,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            while True:
                try:
                    code: int | None = proc.wait(timeout=interval)
                except subprocess.TimeoutExpired:
                    code = None
                for event in tail.poll():
                    events.append(event)
                    console.event(event)
                console.tick()
                if code is not None:
                    return code
        except BaseException:
            _stop(proc, grace=plan.target.resolved_timeouts.recover)
            for event in tail.poll():
                events.append(event)
                console.event(event)
            raise


def _stop(proc: subprocess.Popen[bytes], *, grace: float) -> None:
    """Interrupt pytest and wait for its teardowns; kill it after ``grace`` or a second Ctrl-C."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        proc.kill()
        proc.wait()


class _TermAsInterrupt:
    """While a run goes, SIGTERM stops it like Ctrl-C (pytest is stopped, not orphaned)."""

    def __enter__(self) -> None:
        self._previous: Any = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _log_excerpt(log: str) -> str:
    """The most telling line of pytest's output when it could not run the features."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    found = ""
    for i, line in enumerate(lines):
        if "ERROR collecting " in line and i + 1 < len(lines):
            where = line.strip("_ ").removeprefix("ERROR collecting ").strip()
            found = f"{where}: {lines[i + 1]}"
            break
    if not found:
        starts = ("E   ", "INTERNALERROR>", "ERROR")
        found = next(
            (line for line in lines if line.startswith(starts)), lines[-1] if lines else ""
        )
    if "not found in `markers`" in found:
        found += (
            " (a tag that is neither a guarantee id nor a profile; "
            "`meshproof catalog` lists the ids)"
        )
    return found[:400] or "no output"


def _scenarios(
    events: list[dict[str, Any]],
) -> tuple[list[ScenarioResult], list[ScenarioResult]]:
    """The finished scenarios, and those that started but never finished (run stopped)."""
    finished = [ScenarioResult.from_event(e) for e in events if e.get("event") == "scenario"]
    done = {s.nodeid for s in finished}
    unfinished = [
        ScenarioResult(
            nodeid=str(e["nodeid"]),
            ids=tuple(e.get("ids") or ()),
            name=str(e.get("name") or e["nodeid"]),
            cluster=e.get("cluster") or None,
            outcome=Outcome.NOT_MEASURABLE,
            message=_UNFINISHED,
        )
        for e in events
        if e.get("event") == "scenario_start" and e.get("nodeid") not in done
    ]
    return finished, unfinished


def _refuse_disallowed_drills(plan: RunPlan) -> None:
    """A drill whose faults the target's blast radius does not allow is refused here,
    before pytest starts and before anything is written (``DestructiveRefused``)."""
    if plan.profile != "drill":
        return
    destructive = [g.id for g in plan.guarantees if g.destructive]
    if destructive:
        from meshproof.chaos.experiments import default_experiments_dir
        from meshproof.chaos.running import require_drills_allowed

        require_drills_allowed(plan.target, destructive, default_experiments_dir(plan.root))


def _drill_environment(plan: RunPlan) -> dict[str, str]:
    """What the drills' Chaos Toolkit activities need in the pytest process from its start."""
    if plan.profile != "drill":
        return {}
    from meshproof.chaos.running import kubeconfig_environment

    return kubeconfig_environment(plan.target)


def _dead_run_changes(target: Target) -> list[str]:
    """Changes dead runs left in the target's clusters (read only; ``meshproof recover``
    undoes them): they decide verdicts, so the run names them first."""
    from meshproof.connections import open_connections
    from meshproof.safety.leftovers import dead_run_changes

    try:
        lines = dead_run_changes(open_connections(target).apis)
    except MeshproofError as exc:
        return [f"not checked for leftovers of dead runs: {exc}"]
    if any("never undone" in line for line in lines):
        lines.append(f"`meshproof recover --target {target.source or target.name}` undoes them")
    return lines


def run_profile(
    target: Target,
    profile: str,
    report_dir: Path,
    *,
    features_dir: Path | None = None,
    require_all: bool | None = None,
    out: IO[str] | None = None,
    pushgateway: str | None = None,
) -> int:
    """Prove every guarantee of ``profile`` on ``target``; write reports to ``report_dir``.

    Returns the exit code (0 held · 1 violated · 2 faulty run); raises
    ``MeshproofError`` when the run cannot be done or measured nothing.
    ``features_dir`` and ``require_all`` default to ``$MESHPROOF_FEATURES_DIR``
    (else ``features/``) and ``$MESHPROOF_REQUIRE_ALL``.
    """
    plan = make_plan(
        target, profile, report_dir, features_dir=features_dir, require_all=require_all
    )
    _refuse_disallowed_drills(plan)
    redactor = Redactor(secrets_of(target))
    console = Console(out or sys.stdout, redactor)
    console.start(plan)
    leftovers = _dead_run_changes(target)
    for line in leftovers:
        console.line(f"[ leftovers ] {line}")
    started = _now()
    with tempfile.TemporaryDirectory(prefix="meshproof-run-") as tmp:
        results = Path(tmp, "results.jsonl")
        cucumber_path = Path(tmp, "cucumber.json")
        log_path = Path(tmp, "pytest.log")
        events: list[dict[str, Any]] = []
        interrupted = False
        try:
            with _TermAsInterrupt():
                code = _run_pytest(plan, results, cucumber_path, log_path, console, events)
        except KeyboardInterrupt:
            # Report what finished before the stop, then let the CLI say "interrupted".
            interrupted, code = True, _PYTEST_INTERRUPTED
        log = log_path.read_text(encoding="utf-8", errors="replace")
        try:
            cucumber = json.loads(cucumber_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cucumber = []
    done, unfinished = _scenarios(events)
    scenarios = done + unfinished
    problems: list[str] = []
    faulty = code in _PYTEST_FAULTY or code < 0 or code > _PYTEST_NO_TESTS
    if interrupted:
        problems.append(
            f"interrupted: the run was stopped after {len(done)} scenarios; "
            "what finished is reported, the rest was not measured"
        )
    elif faulty:
        what = _PYTEST_FAULTY.get(code, f"ended by signal {-code}" if code < 0 else "unexpected")
        problems.append(
            f"pytest could not run the features in {plan.features_dir} (exit {code}, {what}): "
            f"{_log_excerpt(log)}; see {plan.report_dir / 'run.log'}"
        )
    nothing_ran = not scenarios and not faulty
    if nothing_ran:
        problems.append(
            f"profile {profile!r} has no runnable guarantees yet on target {target.name!r}: no "
            f"scenario of the profile ran from {plan.features_dir}, so nothing was measured"
        )
    facts = RunFacts(
        run_id=plan.run_id,
        profile=profile,
        started=started,
        finished=_now(),
        features_dir=str(plan.features_dir),
        require_all=plan.require_all,
        errors=tuple([f"at the start: {line}" for line in leftovers] + problems),
    )
    report = build_report(target, plan.catalog, plan.guarantees, scenarios, facts)
    exit_code = EXIT_COULD_NOT_RUN if (faulty or nothing_ran) else decide_exit_code(report)
    report = dataclasses.replace(report, run=dataclasses.replace(report.run, exit_code=exit_code))
    written = write_reports(
        report, plan.report_dir, cucumber=cucumber, scenarios=scenarios, log=log, redactor=redactor
    )
    if pushgateway:
        from meshproof.report.pushgateway import push_results

        warning = push_results(report, pushgateway, timeout=target.resolved_timeouts.api_request)
        console.pushed(pushgateway, warning)
    console.summary(report, exit_code, written)
    if interrupted:
        raise KeyboardInterrupt
    if problems and (faulty or nothing_ran):
        raise MeshproofError(redactor.text(f"{problems[0]}; reports in {plan.report_dir}"))
    return exit_code


def recover(target: Target) -> int:
    """Find and undo leftovers of interrupted runs on ``target``; 0 when it is clean."""
    from meshproof.safety import recover_target

    return recover_target(target)
