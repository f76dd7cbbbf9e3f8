"""``run_load``: Locust headless in a subprocess, bounded, parsed into a :class:`LoadResult`.

Locust is never imported here: it monkey-patches the standard library with
gevent on import, which breaks ssl and threads in an already-running suite.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from meshproof.errors import ConfigError, MeshproofError, WaitTimeout
from meshproof.load.command import (
    FAILURES_EXIT_CODE,
    LOCUST_FILES_PREFIX,
    STOP_FILE,
    locust_commands,
    redact_command,
)
from meshproof.load.plan import LoadPlan, LoadProgress
from meshproof.load.recording import RECORD_FILE_GLOB, RecordCounter, read_records
from meshproof.load.results import (
    REPORTED_QUANTILES,
    LoadResult,
    exact_percentile,
    parse_locust_failures,
    parse_locust_json,
    summarise_records,
)
from meshproof.waiting import eventually

__all__ = ["ensure_locust", "run_load"]

STOP_SIGNAL = signal.SIGINT
"""Stops a Locust run that overran: its Ctrl-C handling stops the users and writes the output
(a run that has what it needs is ended through ``STOP_FILE`` instead)."""

# Lines of a Locust log quoted in an error message.
_LOG_TAIL_LINES = 12


def ensure_locust(python: str | None = None) -> None:
    """Raise ``ConfigError`` unless ``python`` (default: this interpreter) can import locust.

    Only looks the package up; importing it would patch this process with gevent.
    """
    if python is None or os.path.realpath(python) == os.path.realpath(sys.executable):
        if importlib.util.find_spec("locust") is None:
            raise ConfigError(
                f"load: locust is not installed for {sys.executable} "
                "(pip install 'locust>=2.30,<3')"
            )
        return
    probe = "import importlib.util,sys; sys.exit(importlib.util.find_spec('locust') is None)"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(
            f"load: cannot run the interpreter {python!r} to look for locust: {exc}"
        ) from exc
    if done.returncode != 0:
        raise ConfigError(
            f"load: locust is not installed for {python} (pip install 'locust>=2.30,<3')"
        )


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in lines[-_LOG_TAIL_LINES:] if line.strip())


def _start(
    command: Sequence[str],
    env: dict[str, str],
    log: IO[bytes],
    cwd: Path,
    stdout: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    # A session of its own, so that a stuck Locust and anything it forked can be
    # killed as a group without touching the suite.
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else log,
        stderr=log,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(process: subprocess.Popen[bytes], *, grace_s: float, interval: float, what: str) -> None:
    """SIGINT (Locust then writes its output), and SIGKILL the group if it lingers.

    Locust installs its SIGTERM handler only after a load shape has finished, so
    SIGTERM would end a shaped run without its output; Ctrl-C is handled throughout.

    Signals only a process not yet reaped, so a recycled pid is never hit.
    """
    if process.poll() is not None:
        return
    _signal_group(process, STOP_SIGNAL)
    try:
        _wait_exit(process, timeout=grace_s, interval=interval, what=what)
        return
    except WaitTimeout:
        pass
    if process.poll() is None:
        _signal_group(process, signal.SIGKILL)
        try:
            _wait_exit(process, timeout=grace_s, interval=interval, what=what)
        except WaitTimeout:
            pass  # unkillable (e.g. stuck in the kernel); nothing more can be done


def _wait_exit(
    process: subprocess.Popen[bytes], *, timeout: float, interval: float, what: str
) -> int:
    def exited() -> int:
        code = process.poll()
        assert code is not None, f"{what} still running"
        return code

    return eventually(exited, timeout=timeout, interval=interval, what=what)


def _prepare_output(plan: LoadPlan) -> tuple[Path, Path]:
    output_dir = plan.output_dir or Path(tempfile.mkdtemp(prefix="meshproof-load-"))
    record_dir = output_dir / "records"
    try:
        record_dir.mkdir(parents=True, exist_ok=True)
        # Records of an earlier run in the same directory would be counted twice.
        for stale in record_dir.glob(RECORD_FILE_GLOB):
            stale.unlink()
        (output_dir / STOP_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"load: cannot prepare output directory {output_dir}: {exc}") from exc
    return output_dir, record_dir


def run_load(plan: LoadPlan) -> LoadResult:
    """Run ``plan`` to completion (or its hard timeout) and return what it measured.

    A target that refuses connections is not an error: its requests come back
    as failures of kind ``connection-refused``. Raises ``ConfigError`` for a
    missing locust, a missing or broken locustfile and bad options, and
    ``MeshproofError`` when Locust itself crashes.
    """
    plan.validate()
    ensure_locust(plan.python)
    output_dir, record_dir = _prepare_output(plan)
    master_port = _free_loopback_port() if plan.workers else None
    commands = locust_commands(
        plan, output_dir=output_dir, record_dir=record_dir, master_port=master_port
    )
    env = {**os.environ, **commands.env, **plan.secret_env, "PYTHONUNBUFFERED": "1"}
    shown = redact_command(commands.main, commands.env)
    interval = plan.timeouts.poll_interval
    what = f"locust {plan.locustfile.name} against {shown[shown.index('--host') + 1]}"

    counter = RecordCounter(record_dir)
    overran = False
    stopped_early = False
    with ExitStack() as stack:
        main_log = stack.enter_context(open(output_dir / "locust.log", "wb"))
        main_json = stack.enter_context(open(output_dir / f"{LOCUST_FILES_PREFIX}.json", "wb"))
        started_at = datetime.now(UTC)
        began = time.monotonic()
        try:
            main = _start(commands.main, env, main_log, output_dir, stdout=main_json)
        except OSError as exc:
            raise ConfigError(f"load: cannot start {shown[0]!r} for {what}: {exc}") from exc
        workers: list[subprocess.Popen[bytes]] = []
        try:
            for number, command in enumerate(commands.workers):
                log = stack.enter_context(open(output_dir / f"worker-{number}.log", "wb"))
                try:
                    workers.append(_start(command, env, log, output_dir))
                except OSError as exc:
                    raise ConfigError(
                        f"load: cannot start worker {number} for {what}: {exc}"
                    ) from exc
            next_report = began + plan.progress_interval_s

            def finished() -> int:
                nonlocal next_report, stopped_early
                code = main.poll()
                now = time.monotonic()
                if code is None and plan.on_progress is not None and now >= next_report:
                    requests, failures = counter.update()
                    plan.on_progress(LoadProgress(now - began, plan.run_time_s, requests, failures))
                    next_report = now + plan.progress_interval_s
                if code is None and plan.stop_when is not None and not stopped_early:
                    requests, failures = counter.update()
                    progress = LoadProgress(now - began, plan.run_time_s, requests, failures)
                    # Not while Locust still starts (an interrupted import writes nothing),
                    # unless it takes longer than its start-up allowance.
                    running = requests > 0 or now - began >= plan.startup_s
                    if running and plan.stop_when(progress):
                        stopped_early = True
                        (output_dir / STOP_FILE).touch()
                assert code is not None, f"{what} still running"
                return code

            try:
                exit_code = eventually(
                    finished, timeout=plan.startup_s + plan.run_time_s, interval=interval, what=what
                )
            except WaitTimeout:
                # Past its run time plus start-up: stop it (SIGINT lets Locust write
                # its output, SIGKILL follows if it does not).
                overran = True
                _stop(main, grace_s=plan.stop_s, interval=interval, what=what)
                exit_code = main.returncode if main.returncode is not None else -signal.SIGKILL
        finally:
            ended_at = datetime.now(UTC)
            for worker in workers:
                # Workers quit when their master does; a stuck one is ended here.
                try:
                    _wait_exit(
                        worker, timeout=plan.stop_s, interval=interval, what=f"{what} (worker)"
                    )
                except WaitTimeout:
                    _stop(worker, grace_s=plan.stop_s, interval=interval, what=f"{what} (worker)")
            _stop(main, grace_s=plan.stop_s, interval=interval, what=what)

    result = _collect(
        plan, output_dir, record_dir, shown, started_at, ended_at, exit_code, overran, what
    )
    return dataclasses.replace(result, stopped_early=stopped_early and not overran)


def _collect(
    plan: LoadPlan,
    output_dir: Path,
    record_dir: Path,
    shown: tuple[str, ...],
    started_at: datetime,
    ended_at: datetime,
    exit_code: int,
    overran: bool,
    what: str,
) -> LoadResult:
    log = output_dir / "locust.log"
    locust = parse_locust_json(output_dir / f"{LOCUST_FILES_PREFIX}.json")
    if locust is None and not overran:
        tail = _log_tail(log)
        if "usage:" in tail or ("error:" in tail.lower() and "argument" in tail.lower()):
            raise ConfigError(f"load: {what}: Locust rejected its options: {tail}")
        raise ConfigError(f"load: {what}: Locust exited {exit_code} before running: {tail}")
    if exit_code not in (0, FAILURES_EXIT_CODE) and not overran:
        raise MeshproofError(f"load: {what}: Locust exited {exit_code}: {_log_tail(log)}")

    summary = summarise_records(read_records(record_dir))
    if summary.requests == 0 and locust is not None and locust.requests > 0:
        raise ConfigError(
            f"load: {what}: Locust made {locust.requests} requests but the locustfile recorded "
            "none (it must call loadtests/_recording.record_requests())"
        )
    span = (
        (summary.last_end - summary.first_start)
        if summary.first_start is not None and summary.last_end is not None
        else 0.0
    )
    return LoadResult(
        locustfile=os.fspath(plan.locustfile),
        command=shown,
        started_at=started_at,
        ended_at=ended_at,
        run_time_s=plan.run_time_s,
        requests=summary.requests,
        failures=summary.failures,
        failures_by_kind=summary.failures_by_kind,
        status_counts=summary.status_counts,
        versions=summary.versions,
        instances=summary.instances,
        rps=summary.requests / span if span > 0 else 0.0,
        exact_percentiles_ms={
            q: exact_percentile(summary.latencies_ms, q) for q in REPORTED_QUANTILES
        },
        latencies_ms=summary.latencies_ms,
        ok_latencies_ms=summary.ok_latencies_ms,
        locust=locust,
        locust_failures=parse_locust_failures(output_dir / f"{LOCUST_FILES_PREFIX}_failures.csv"),
        exit_code=exit_code,
        workers=plan.workers,
        overran=overran,
        output_dir=output_dir,
    )
