"""Locust command lines for a :class:`~meshproof.load.plan.LoadPlan`, and their redacted form.

meshproof-specific settings (shape, exact-record directory) travel as
environment variables that the project's locustfiles read through Locust's
own option parser; a foreign locustfile that does not know them simply
ignores them instead of failing on an unknown flag.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from meshproof.load.plan import LoadPlan, redact_url

__all__ = [
    "FAILURES_EXIT_CODE",
    "LOCUST_FILES_PREFIX",
    "STOP_FILE",
    "LocustCommands",
    "locust_commands",
    "redact_command",
]

STOP_FILE = "stop"
"""In the output dir: once it exists, meshproof's load shape ends the run (Locust then stops its
users and writes its output, as at the end of ``-t``). A file, not a signal: a process started
with SIGINT ignored (a background job of a non-interactive shell) keeps ignoring Ctrl-C."""

LOCUST_FILES_PREFIX = "locust"
"""Locust writes ``locust_stats.csv``, ``locust_failures.csv`` in the output dir; the runner
saves its stdout (the ``--json`` stats) as ``locust.json`` and its log as ``locust.log``."""

# Option names whose values are never shown (a header or token given as an option).
_SECRET_HINTS = ("token", "password", "secret", "auth", "key", "cookie")

# Locust's exit code when the run had failed requests; anything else non-zero is trouble.
FAILURES_EXIT_CODE = 3


@dataclass(frozen=True, slots=True)
class LocustCommands:
    """The processes of one run: a single Locust (or master), then any workers."""

    main: tuple[str, ...]
    workers: tuple[tuple[str, ...], ...]
    env: Mapping[str, str]
    """Non-secret environment shared by every process (meshproof's locustfile settings)."""


def _option_args(options: Mapping[str, str]) -> list[str]:
    args: list[str] = []
    for key, value in options.items():
        args += [f"--{key}", str(value)]
    return args


def locust_commands(
    plan: LoadPlan, *, output_dir: Path, record_dir: Path, master_port: int | None = None
) -> LocustCommands:
    """Build the command lines; ``master_port`` is required when ``plan.workers`` > 0."""
    python = plan.python or sys.executable
    # Locust runs in the output directory, so a relative path would point elsewhere.
    locustfile = os.path.abspath(plan.locustfile)
    prefix = os.fspath(output_dir / LOCUST_FILES_PREFIX)
    main = [
        python, "-m", "locust",
        "-f", locustfile,
        "--headless",
        "-u", str(plan.users),
        "-r", f"{plan.spawn_rate:g}",
        "-t", f"{math.ceil(plan.run_time_s)}s",
        "--host", plan.host,
        "--csv", prefix,
        # --json (final stats on stdout) exists since Locust 2.13; --json-file is
        # newer and was broken or missing in some 2.37 releases (locust#3130, #3154).
        "--json",
        "--only-summary",
        "--exit-code-on-error", str(FAILURES_EXIT_CODE),
    ]  # fmt: skip
    workers: list[tuple[str, ...]] = []
    if plan.workers:
        if master_port is None:
            raise ValueError("a distributed run needs the master's port")
        main += [
            "--master",
            "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(master_port),
            "--expect-workers", str(plan.workers),
            "--expect-workers-max-wait", str(max(1, math.ceil(plan.startup_s))),
        ]  # fmt: skip
        worker = [
            python, "-m", "locust",
            "-f", locustfile,
            "--worker",
            "--master-host", "127.0.0.1",
            "--master-port", str(master_port),
            *_option_args(plan.options),
            *plan.user_classes,
        ]  # fmt: skip
        workers = [tuple(worker)] * plan.workers
    main += _option_args(plan.options)
    main += list(plan.user_classes)
    env = {
        "MESHPROOF_LOAD_RECORD_DIR": os.fspath(record_dir),
        "MESHPROOF_LOAD_STOP_FILE": os.fspath(output_dir / STOP_FILE),
        "MESHPROOF_LOAD_SHAPE": plan.shape,
        "MESHPROOF_LOAD_STEP_USERS": str(max(1, plan.step_users)),
        "MESHPROOF_LOAD_STEP_SECONDS": f"{plan.step_s if plan.step_s > 0 else 10.0:g}",
    }
    return LocustCommands(main=tuple(main), workers=tuple(workers), env=env)


def redact_command(command: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``command`` as a person may see it: URL credentials and secret-looking option values hidden.

    ``env`` (non-secret settings) is shown in front as ``NAME=value`` words so
    the line can be pasted into a shell to repeat the run.
    """
    shown: list[str] = [f"{k}={v}" for k, v in sorted((env or {}).items())]
    hide_next = False
    for word in command:
        if hide_next:
            shown.append("***")
            hide_next = False
            continue
        if word.startswith("--") and any(h in word.lower() for h in _SECRET_HINTS):
            shown.append(word)
            hide_next = True
            continue
        shown.append(redact_url(word) if "://" in word else word)
    return tuple(shown)
