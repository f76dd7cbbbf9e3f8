"""``meshproof run --watch``: keep checking the non-destructive guarantees during an upgrade.

Rounds of the profile run one after another (a round starts ``interval``
seconds after the previous one started, or when it ends if it took longer)
until ``duration`` has passed; no round starts after that, so the watch stops
by itself. Each round writes its reports under ``REPORT_DIR/rounds/NNN/``.
Whenever a guarantee's verdict differs from the round before, one line is
printed (``[ change ] ...``) and the change joins the timeline in
``REPORT_DIR/watch.json``; a round that could not run at all (the API server
restarting mid-upgrade) is recorded too. The last round's reports are copied
to ``REPORT_DIR`` so ``index.html`` shows the state the watch ended in.

Exit code: 1 if any round saw a violated guarantee, 2 if no round produced a
report, else 0.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from meshproof.catalog import Catalog
from meshproof.compare import load_report
from meshproof.errors import ConfigError, MeshproofError
from meshproof.target import Target

__all__ = ["RoundRunner", "VerdictChange", "WatchRecord", "watch", "watch_command"]

EXIT_HELD = 0
EXIT_VIOLATED = 1
EXIT_COULD_NOT_RUN = 2

RoundRunner = Callable[[Path, IO[str]], int]
"""Runs one round: writes its reports to the directory, console output to the stream."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class VerdictChange:
    """A guarantee's verdict differs from the previous round's (``before`` None: first round)."""

    at: str
    round: int
    guarantee: str
    before: str | None
    after: str
    reason: str


@dataclass(slots=True)
class WatchRecord:
    """What ``watch.json`` holds."""

    profile: str
    interval_s: float
    duration_s: float
    started: str
    finished: str = ""
    rounds: list[dict[str, Any]] = field(default_factory=list)
    changes: list[VerdictChange] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": "meshproof.watch/v1", "profile": self.profile,
                "interval_s": self.interval_s, "duration_s": self.duration_s,
                "started": self.started, "finished": self.finished, "rounds": self.rounds,
                "changes": [asdict(c) for c in self.changes]}


def watch(run_round: RoundRunner, report_dir: Path, *, profile: str, interval: float,
          duration: float, out: IO[str], clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> int:
    """Run rounds until ``duration`` has passed; record and print every verdict change."""
    if interval <= 0 or duration <= 0:
        raise MeshproofError(f"--interval and --duration must be > 0 seconds, got {interval:g} "
                             f"and {duration:g}")
    report_dir.mkdir(parents=True, exist_ok=True)
    record = WatchRecord(profile, interval, duration, _now())
    begin = clock()
    previous: dict[str, str] = {}
    worst = EXIT_COULD_NOT_RUN
    number = 0
    out.write(f"[ watch ] {profile} every {interval:g} s for {duration:g} s; reports in "
              f"{report_dir}\n")
    while True:
        number += 1
        round_dir = report_dir / "rounds" / f"{number:03d}"
        started_at, started = _now(), clock()
        round_dir.mkdir(parents=True, exist_ok=True)
        with (round_dir / "console.log").open("w", encoding="utf-8") as console:
            try:
                code = run_round(round_dir, console)
                problem = ""
            except MeshproofError as exc:
                code, problem = EXIT_COULD_NOT_RUN, str(exc)
        verdicts, reasons = _verdicts(round_dir)
        entry: dict[str, Any] = {"round": number, "started": started_at, "finished": _now(),
                                 "exit_code": code, "report_dir": str(round_dir),
                                 "verdicts": verdicts}
        if problem:
            entry["problem"] = problem
        record.rounds.append(entry)
        if verdicts:
            if code == EXIT_VIOLATED or "violated" in verdicts.values():
                worst = EXIT_VIOLATED
            elif worst == EXIT_COULD_NOT_RUN:
                worst = EXIT_HELD
            for gid, verdict in verdicts.items():
                if previous.get(gid) != verdict:
                    change = VerdictChange(entry["finished"], number, gid, previous.get(gid),
                                           verdict, reasons.get(gid, ""))
                    record.changes.append(change)
                    out.write(_change_line(change))
            previous = verdicts
            _copy_reports(round_dir, report_dir)
        held = sum(1 for v in verdicts.values() if v == "held")
        status = f"{held}/{len(verdicts)} held" if verdicts else f"could not run: {problem}"
        out.write(f"[ watch ] round {number}: {status}\n")
        record.finished = _now()
        (report_dir / "watch.json").write_text(json.dumps(record.to_dict(), indent=2) + "\n",
                                               encoding="utf-8")
        next_start = started + interval
        if next_start - begin >= duration:
            break
        sleep(max(0.0, next_start - clock()))
    rounds = f"{number} round{'s' if number != 1 else ''}"
    out.write(f"[ watch ] {rounds}, {len(record.changes)} verdict changes; timeline in "
              f"{report_dir / 'watch.json'}\n")
    return worst


def _verdicts(round_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The round's verdict and reason per guarantee (empty when it wrote no report)."""
    if not (round_dir / "report.json").is_file():
        return {}, {}
    report = load_report(round_dir)
    return ({g.id: g.verdict.value for g in report.guarantees},
            {g.id: g.reason for g in report.guarantees})


def _change_line(change: VerdictChange) -> str:
    before = change.before.replace("_", " ") if change.before else "first seen"
    after = change.after.replace("_", " ")
    return (f"[ change ] {change.at} round {change.round} {change.guarantee}: {before} -> "
            f"{after} - {change.reason}\n")


def _copy_reports(round_dir: Path, report_dir: Path) -> None:
    for path in round_dir.iterdir():
        if path.is_file() and path.name != "console.log":
            shutil.copy2(path, report_dir / path.name)


def watch_command(target: Target, catalog: Catalog, profile: str, report_dir: Path,
                  run_round: RoundRunner, interval: float | None, duration: float | None, *,
                  out: IO[str] | None = None) -> int:
    """``meshproof run --watch``: refuse destructive profiles, then ``watch``."""
    destructive = [g.id for g in catalog.for_profile(profile) if g.destructive]
    if destructive:
        raise ConfigError(f"--watch repeats only non-destructive checks, and profile {profile} "
                          f"has destructive ones ({', '.join(destructive)}); use --profile "
                          "nightly")
    timeouts = target.resolved_timeouts
    return watch(run_round, report_dir, profile=profile,
                 interval=timeouts.watch_interval if interval is None else interval,
                 duration=timeouts.watch_duration if duration is None else duration,
                 out=out or sys.stdout)
