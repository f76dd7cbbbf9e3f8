"""What a person sees while a run goes: stable, greppable prefixes and a closing summary.

::

    [ run ]             the run, the selection, each scenario as it starts
    [ phase ]           each step as it starts (the slow parts are visible), and every
                        30 s while one runs: how long, and for a step that runs for the
                        guarantee's window, about how much of the window is left
    [ HELD ] [ VIOLATED ] [ NOT MEASURABLE ]   each scenario as it ends, then each guarantee
    [ evidence ]        what a finished scenario recorded
    [ reports ]         where the reports are
    [ push ]            where the results were pushed (``--pushgateway``), or why not
    [ summary ]         the violated and not-measurable guarantees, named; run problems
    N/M guarantees held, V violated, U not measurable      (always the last line)

Every line passes through the redactor: no credential is ever printed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from meshproof.report.model import Report
from meshproof.report.redact import Redactor
from meshproof.run.plan import RunPlan
from meshproof.run.results import MESH, ScenarioResult
from meshproof.run.verdicts import Outcome
from meshproof.sli.verdict import Verdict
from meshproof.urls import shown_url

__all__ = ["Console", "verdict_prefix"]

_PREFIX = {
    Verdict.HELD: "[ HELD ]",
    Verdict.VIOLATED: "[ VIOLATED ]",
    Verdict.NOT_MEASURABLE: "[ NOT MEASURABLE ]",
    Verdict.INCONCLUSIVE: "[ NOT MEASURABLE ]",
}
_MAX_EVIDENCE_LINES = 8
_MAX_VALUE = 160
_PROGRESS_EVERY_S = 30.0
"""How often a running step is reported again (display cadence, not a wait)."""
_WINDOW_STEP = "window"
"""A step whose text names the window ("for the guarantee's window") lasts about that long."""


def verdict_prefix(verdict: Verdict) -> str:
    """The line prefix of a verdict."""
    return _PREFIX[verdict]


def _duration(seconds: float) -> str:
    whole = max(int(seconds), 0)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _short(value: Any) -> str:
    text = (
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    )
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


class Console:
    """Writes the run's terminal output to ``stream``."""

    def __init__(
        self, stream: IO[str], redactor: Redactor, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._redactor = redactor
        self._clock = clock
        self._selected = 0
        self._started = 0
        self._windows: dict[str, int] = {}
        self._step: tuple[str, str, tuple[str, ...], float] | None = None
        """The running step: who, its text, its guarantee ids, when it started."""
        self._last_shown = 0.0

    def line(self, text: str) -> None:
        self._stream.write(self._redactor.text(text) + "\n")
        self._stream.flush()

    def start(self, plan: RunPlan) -> None:
        t = plan.target
        self.line(f"[ run ] target {t.name} ({t.source}), clusters {', '.join(t.cluster_names)}")
        self.line(
            f"[ run ] profile {plan.profile}: {len(plan.guarantees)} guarantees, "
            f"features from {plan.features_dir}, run id {plan.run_id}"
        )
        self._windows = {
            g.id: t.effective_thresholds(plan.catalog, g.id).window_s for g in plan.guarantees
        }

    def event(self, event: Mapping[str, Any]) -> None:
        """Show one event of the results file."""
        kind = event.get("event")
        if kind == "collected":
            scenarios = event.get("scenarios") or []
            self._selected = len(scenarios)
            self.line(f"[ run ] {self._selected} scenarios selected")
            for s in scenarios:
                if not s.get("ids"):
                    self.line(
                        f"[ run ] warning: {s['nodeid']} has no guarantee tag; "
                        "it counts for nothing"
                    )
        elif kind == "scenario_start":
            self._started += 1
            self.line(
                f"[ run ] {self._started}/{self._selected} {self._who(event)}: {event.get('name')}"
            )
        elif kind == "step":
            self.line(f"[ phase ] {self._who(event)}: {event.get('step')}")
            now = self._clock()
            ids = tuple(event.get("ids") or ())
            self._step = (self._who(event), str(event.get("step")), ids, now)
            self._last_shown = now
        elif kind == "scenario":
            self._step = None
            self.scenario(ScenarioResult.from_event(dict(event)))

    def tick(self) -> None:
        """Between events: say again what is running, every so often, with the time left."""
        if self._step is None:
            return
        now = self._clock()
        if now - self._last_shown < _PROGRESS_EVERY_S:
            return
        self._last_shown = now
        who, step, ids, started = self._step
        ran = now - started
        windows = [self._windows[i] for i in ids if i in self._windows]
        progress = f"running for {_duration(ran)}"
        if windows and _WINDOW_STEP in step.lower():
            window = max(windows)
            left = window - ran
            progress += (
                f", about {_duration(left)} left of the {window}s window"
                if left > 0
                else f", past the {window}s window by {_duration(-left)}"
            )
        self.line(f"[ phase ] {who}: {step} - {progress}")

    @staticmethod
    def _who(event: Mapping[str, Any]) -> str:
        ids = ",".join(event.get("ids") or ()) or "(no guarantee)"
        return f"{ids} {event.get('cluster') or MESH}"

    def scenario(self, s: ScenarioResult) -> None:
        ids = ",".join(s.ids) or "(no guarantee)"
        head = f"{verdict_prefix(s.verdict)} {ids} {s.cluster_key}: {s.name}"
        if s.outcome is Outcome.PASSED:
            self.line(f"{head} ({s.duration_s:.2f}s)")
        else:
            why = f"the check could not run: {s.message}" if s.could_not_run else s.message
            fix = f" (fix: {s.fix})" if s.fix else ""
            self.line(f"{head} - {why}{fix}")
        items = s.evidence.get("items") or []
        for item in items[:_MAX_EVIDENCE_LINES]:
            where = item.get("cluster") or s.cluster_key
            self.line(f"[ evidence ] {ids} {where}: {item.get('key')}={_short(item.get('value'))}")
        if len(items) > _MAX_EVIDENCE_LINES:
            self.line(f"[ evidence ] {ids}: {len(items) - _MAX_EVIDENCE_LINES} more in the report")

    def pushed(self, url: str, warning: str | None) -> None:
        """Where the results were pushed, or the one warning line a failed push is."""
        if warning:
            self.line(f"[ push ] warning: {warning}; the run's result does not change")
        else:
            self.line(f"[ push ] results pushed to the Pushgateway at {shown_url(url)}")

    def summary(self, report: Report, exit_code: int, written: Mapping[str, Path]) -> None:
        """The closing summary; its last line is ``N/M guarantees held, ...``."""
        run, s = report.run, report.summary
        self.line(f"[ summary ] profile {run.profile} on target {run.target}: {s.total} guarantees")
        for g in report.guarantees:
            fix = f" (fix: {g.fix})" if g.fix and g.verdict is not Verdict.HELD else ""
            self.line(f"{verdict_prefix(g.verdict)} {g.id} - {g.reason}{fix}")
        if written:
            others = ", ".join(name for name in written if name != "index.html")
            self.line(
                f"[ reports ] {written.get('index.html', next(iter(written.values())))} ({others})"
            )
        if s.violated:
            self.line(f"[ summary ] {len(s.violated)} violated: {', '.join(s.violated)}")
        if s.not_measurable:
            self.line(
                f"[ summary ] {len(s.not_measurable)} NOT MEASURABLE (never counted as held): "
                f"{', '.join(s.not_measurable)}"
            )
            consequence = (
                "--require-all is on: each of them fails the run"
                if run.require_all
                else "the certificate cannot be better than partial; "
                "--require-all fails the run on them"
            )
            self.line(f"[ summary ] {consequence}")
        for error in run.errors:
            self.line(f"[ summary ] run problem: {error}")
        self.line(f"[ summary ] result {s.result}, exit code {exit_code}")
        self.line(
            f"{len(s.held)}/{s.total} guarantees held, {len(s.violated)} violated, "
            f"{len(s.not_measurable)} not measurable"
        )
