"""pytest plugin the runner loads (``-p meshproof.run.pytest_plugin``): results file and report.

With ``--meshproof-results PATH`` every event is one JSON line, flushed at once,
so the runner can show progress while pytest runs:

::

    {"event": "session_start", "time": ...}
    {"event": "collected", "scenarios": [{"nodeid", "ids", "name", "cluster"}, ...]}
    {"event": "scenario_start", "nodeid", "ids", "name", "cluster", "feature"}
    {"event": "step", "nodeid", "ids", "name", "cluster", "step": "Then ...", "line"}
    {"event": "scenario", "nodeid", "ids", "name", "cluster", "feature", "feature_uri", "item",
     "outcome", "message", "fix", "errors", "evidence", "duration_s", "interrupted_line",
     "started", "finished"}
    {"event": "session_finish", "exitstatus": ...}

The mapping from exceptions to outcomes is ``meshproof.run.verdicts``'.

With ``--meshproof-report DIR`` (and ``-m PROFILE``), a plain pytest run over the
features writes the same reports as ``meshproof run`` into ``DIR``: the same
scenario results go through the same ``build_report``, so both give the same
verdict per guarantee::

    pytest features --target .meshproof/lab/target.yaml -m nightly \
        --meshproof-report reports/pytest
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from meshproof.catalog import PROFILES
from meshproof.errors import ConfigError
from meshproof.run.evidence import EVIDENCE_KEY
from meshproof.run.features import features_base_dir
from meshproof.run.items import example_cluster, guarantee_ids_of, scenario_name
from meshproof.run.plan import RUN_ID_ENV
from meshproof.run.results import ScenarioResult
from meshproof.run.verdicts import GuaranteeViolated, NotMeasurable, Outcome
from meshproof.sli.verdict import Verdict
from meshproof.target import Target, load_target

__all__ = ["ResultsWriter", "SessionReport", "classify"]

_MAX_MESSAGE = 500


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."
    return ""


@dataclass(frozen=True, slots=True)
class _Phase:
    outcome: Outcome
    message: str = ""
    fix: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


def classify(excinfo: pytest.ExceptionInfo[BaseException] | None) -> _Phase:
    """The outcome one test phase stands for, from the exception it ended with (if any)."""
    if excinfo is None:
        return _Phase(Outcome.PASSED)
    exc = excinfo.value
    if isinstance(exc, NotMeasurable):
        return _Phase(Outcome.NOT_MEASURABLE, _first_line(exc.reason), exc.fix)
    if isinstance(exc, pytest.skip.Exception):
        return _Phase(Outcome.NOT_MEASURABLE, _first_line(str(exc.msg or "skipped")))
    if isinstance(exc, GuaranteeViolated):
        return _Phase(
            Outcome.VIOLATED, _first_line(str(exc)), evidence=dict(exc.judgement.evidence)
        )
    if isinstance(exc, AssertionError):
        return _Phase(Outcome.VIOLATED, _first_line(str(exc)) or "assertion failed")
    detail = _first_line(str(exc))
    name = type(exc).__name__
    return _Phase(Outcome.ERROR, f"{name}: {detail}" if detail else name)


def _combine(phases: list[_Phase]) -> _Phase:
    """Violated beats a faulty check, which beats not measurable, which beats passed."""
    for wanted in (Outcome.VIOLATED, Outcome.ERROR, Outcome.NOT_MEASURABLE):
        for phase in phases:
            if phase.outcome is wanted:
                return phase
    return _Phase(Outcome.PASSED)


def _now(*, seconds: bool = False) -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds" if seconds else "milliseconds")


class ResultsWriter:
    """Collects each scenario's phases and writes the events to the results file (if any).

    Every finished scenario is also kept in ``scenarios``, for ``--meshproof-report``.
    """

    def __init__(self, stream: IO[str] | None, report: SessionReport | None = None) -> None:
        self._stream = stream
        self._report = report
        self.scenarios: list[ScenarioResult] = []
        self._phases: dict[str, list[_Phase]] = {}
        self._started: dict[str, tuple[str, float]] = {}
        self._running_step: dict[str, int | None] = {}
        self._feature: dict[str, tuple[str, str]] = {}
        self._steps_run: dict[str, int] = {}

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, default=str)
        if event == "scenario":
            # What the runner reads back from the file, read back the same way.
            self.scenarios.append(ScenarioResult.from_event(json.loads(line)))
        if self._stream is not None:
            self._stream.write(line + "\n")
            self._stream.flush()

    def _describe(self, item: pytest.Item) -> dict[str, Any]:
        return {
            "nodeid": item.nodeid,
            "ids": list(guarantee_ids_of(item)),
            "name": scenario_name(item),
            "cluster": example_cluster(item),
        }

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.emit("collected", scenarios=[self._describe(item) for item in session.items])

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self._phases[nodeid] = []
        self._started[nodeid] = (_now(), time.monotonic())
        self._running_step[nodeid] = None

    def pytest_bdd_before_scenario(
        self, request: pytest.FixtureRequest, feature: Any, scenario: Any
    ) -> None:
        item = request.node
        self._feature[item.nodeid] = (feature.name or feature.rel_filename, feature.rel_filename)
        self.emit("scenario_start", **self._describe(item), feature=feature.name)

    def pytest_bdd_before_step(self, request: pytest.FixtureRequest, step: Any) -> None:
        nodeid = request.node.nodeid
        self._running_step[nodeid] = step.line_number
        self._steps_run[nodeid] = self._steps_run.get(nodeid, 0) + 1
        self.emit(
            "step",
            **self._describe(request.node),
            step=f"{step.keyword} {step.name}",
            line=step.line_number,
        )

    def pytest_bdd_after_step(self, request: pytest.FixtureRequest) -> None:
        self._running_step[request.node.nodeid] = None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        phase = classify(call.excinfo)
        self._phases.setdefault(item.nodeid, []).append(phase)
        if call.when == "teardown":
            self._finish(item)
        return report

    def _finish(self, item: pytest.Item) -> None:
        phases = self._phases.pop(item.nodeid, [])
        final = _combine(phases)
        recorder = item.stash.get(EVIDENCE_KEY, None)
        evidence = recorder.to_json() if recorder else {"items": [], "judgements": []}
        if final.outcome is Outcome.PASSED and recorder:
            # A recorded judgement that did not hold decides, even if no step asserted on it.
            worst = [j for j in recorder.judgements if j.verdict is not Verdict.HELD]
            violated = [j for j in worst if j.verdict is Verdict.VIOLATED]
            if violated or worst:
                decisive = (violated or worst)[0]
                outcome = Outcome.VIOLATED if violated else Outcome.NOT_MEASURABLE
                final = _Phase(outcome, _first_line(decisive.reason))
        if final.outcome is Outcome.PASSED and not self._steps_run.pop(item.nodeid, 0):
            # A scenario without steps measured nothing; it must not count as held.
            final = _Phase(
                Outcome.NOT_MEASURABLE,
                "the scenario ran no steps, so nothing was measured",
                "give the scenario its Given/When/Then steps",
            )
        if final.evidence:
            evidence["judgement_evidence"] = final.evidence
        started, t0 = self._started.pop(item.nodeid, (_now(), time.monotonic()))
        feature, feature_uri = self._feature.pop(item.nodeid, ("", ""))
        self.emit(
            "scenario",
            **self._describe(item),
            item=item.name,
            feature=feature,
            feature_uri=feature_uri,
            outcome=final.outcome.value,
            message=final.message,
            fix=final.fix,
            errors=[p.message for p in phases if p.outcome is Outcome.ERROR],
            evidence=evidence,
            duration_s=round(time.monotonic() - t0, 3),
            interrupted_line=self._running_step.pop(item.nodeid, None),
            started=started,
            finished=_now(),
        )

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self.emit("session_finish", exitstatus=int(exitstatus))
        if self._report is not None:
            self._report.write(self.scenarios, int(exitstatus))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self._report is not None and self._report.summary:
            terminalreporter.write_line(self._report.summary)


# pytest's exit codes that mean the features could not be run (as the runner reads them).
_PYTEST_FAULTY = {2: "interrupted or collection errors", 3: "internal error", 4: "usage error"}


@dataclass(slots=True)
class SessionReport:
    """``--meshproof-report``: the reports ``meshproof run`` writes, from a plain pytest run."""

    target: Target
    profile: str
    directory: Path
    features_dir: Path
    started: str = field(default_factory=lambda: _now(seconds=True))
    summary: str = ""
    """The line shown at the end of the run, once the reports are written."""

    def write(self, scenarios: list[ScenarioResult], exitstatus: int) -> None:
        """Build the report as the runner does (``build_report``) and write every file."""
        # Imported here: the report renderers are heavy and only this option needs them.
        from meshproof.catalog import load_catalog
        from meshproof.report import write_reports
        from meshproof.report.model import RunFacts, build_report
        from meshproof.report.redact import Redactor, secrets_of
        from meshproof.runner import decide_exit_code

        catalog = load_catalog()
        faulty = exitstatus in _PYTEST_FAULTY
        problems = (
            (f"pytest could not run the features (exit {exitstatus}, "
             f"{_PYTEST_FAULTY[exitstatus]})",) if faulty else ()
        )  # fmt: skip
        facts = RunFacts(
            run_id=os.environ.get(RUN_ID_ENV) or secrets.token_hex(4),
            profile=self.profile,
            started=self.started,
            finished=_now(seconds=True),
            features_dir=str(self.features_dir),
            require_all=False,
            errors=problems,
        )
        report = build_report(
            self.target, catalog, catalog.for_profile(self.profile), scenarios, facts
        )
        code = decide_exit_code(report, faulty=faulty)
        report = dataclasses.replace(report, run=dataclasses.replace(report.run, exit_code=code))
        redactor = Redactor(secrets_of(self.target))
        written = write_reports(
            report, self.directory, cucumber=[], scenarios=scenarios, log="", redactor=redactor
        )
        held = len(report.summary.held)
        self.summary = (
            f"meshproof: {held}/{report.summary.total} guarantees held "
            f"(profile {self.profile}, exit code {code}); report: {written['report.json']}"
        )


def _session_report(config: pytest.Config) -> SessionReport | None:
    """The ``--meshproof-report`` request, checked; a bad one is a one-line usage error."""
    directory = config.getoption("--meshproof-report")
    if not directory:
        return None
    profile = str(config.getoption("markexpr", "") or "").strip()
    if profile not in PROFILES:
        raise pytest.UsageError(
            f"--meshproof-report needs the profile as the marker expression, one of "
            f"-m {' | -m '.join(PROFILES)} (got {profile!r})"
        )
    spec = config.getoption("--target", None)
    if not spec:
        raise pytest.UsageError("--meshproof-report needs --target lab|FILE")
    try:
        target = load_target(spec)
    except ConfigError as exc:
        raise pytest.UsageError(f"--target {spec}: {exc}") from None
    return SessionReport(
        target=target,
        profile=profile,
        directory=Path(directory).expanduser().resolve(),
        features_dir=features_base_dir(config),
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshproof")
    group.addoption(
        "--meshproof-results",
        default=None,
        metavar="PATH",
        help="write one JSON line per scenario result (for `meshproof run`)",
    )
    group.addoption(
        "--meshproof-report",
        default=None,
        metavar="DIR",
        help="write the reports `meshproof run` writes (report.json: one verdict per guarantee "
        "of the -m profile) to DIR",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--meshproof-results")
    report = _session_report(config)
    if not path and report is None:
        return
    # Open for the whole session; pytest_unconfigure closes it.
    stream = Path(path).open("a", encoding="utf-8") if path else None  # noqa: SIM115
    writer = ResultsWriter(stream, report)
    config.stash[_WRITER_KEY] = (writer, stream)
    config.pluginmanager.register(writer, "meshproof-results-writer")
    writer.emit("session_start", time=_now())


def pytest_unconfigure(config: pytest.Config) -> None:
    entry = config.stash.get(_WRITER_KEY, None)
    if entry is not None:
        writer, stream = entry
        config.pluginmanager.unregister(writer)
        if stream is not None:
            stream.close()


_WRITER_KEY = pytest.StashKey[tuple[ResultsWriter, IO[str] | None]]()
