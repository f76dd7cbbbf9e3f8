"""What a load run should do: the typed input of :func:`meshproof.load.run_load`."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from meshproof.errors import ConfigError
from meshproof.timeouts import DEFAULT_TIMEOUTS, Timeouts

__all__ = ["LOADTESTS_DIR", "LoadPlan", "LoadProgress", "Shape", "bundled_locustfile", "redact_url"]

Shape = Literal["steady", "step"]

LOADTESTS_DIR = Path(__file__).resolve().parents[3] / "loadtests"
"""The repository's ``loadtests/`` folder (the library is installed editable from it)."""


def bundled_locustfile(name: str) -> Path:
    """The path of one of the project's locustfiles, e.g. ``helloworld`` or ``ingress``."""
    path = LOADTESTS_DIR / f"{name.removesuffix('.py')}.py"
    if not path.is_file():
        raise ConfigError(f"locustfile {name!r}: not found in {LOADTESTS_DIR}")
    return path


@dataclass(frozen=True, slots=True)
class LoadProgress:
    """One progress report of a running load."""

    elapsed_s: float
    """Seconds since Locust was started."""
    total_s: float
    """The planned run time."""
    requests: int
    """Requests recorded so far (all workers)."""
    failures: int
    """Of which failed."""

    def line(self) -> str:
        """A line for a person: stable prefix, elapsed / total, requests so far."""
        return (
            f"load: {self.elapsed_s:5.0f}s / {self.total_s:.0f}s, "
            f"{self.requests} requests ({self.failures} failed)"
        )


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """A headless Locust run, bounded in time."""

    locustfile: Path
    """The locustfile to run (see :func:`bundled_locustfile`)."""
    host: str
    """Locust's ``--host``: the base URL requests go to (credentials allowed, never logged)."""
    users: int
    """Peak number of concurrent users."""
    run_time_s: float
    """How long the load runs once started; Locust stops by itself after it."""
    spawn_rate: float = 10.0
    """Users started per second."""
    shape: Shape = "steady"
    """``steady``: ``users`` for the whole run; ``step``: ``step_users`` more every ``step_s``."""
    step_users: int = 0
    """With ``shape="step"``: users added at each step (the first step starts with this many)."""
    step_s: float = 0.0
    """With ``shape="step"``: seconds each step lasts."""
    workers: int = 0
    """0 runs one Locust process; N > 0 runs a master and N local workers."""
    options: Mapping[str, str] = field(default_factory=dict)
    """The locustfile's own options, without dashes, e.g. ``{"connect-to": "127.1.0.50:443"}``."""
    secret_env: Mapping[str, str] = field(default_factory=dict)
    """Environment for Locust that must not appear in the recorded command line."""
    user_classes: tuple[str, ...] = ()
    """Run only these User classes of the locustfile (default: all of them)."""
    output_dir: Path | None = None
    """Where Locust's CSV/JSON, logs and the exact records go (default: a fresh temp dir)."""
    python: str | None = None
    """The interpreter that runs Locust (default: the suite's own)."""
    startup_s: float = 30.0
    """Allowance on top of ``run_time_s`` for Locust (and its workers) to start."""
    stop_s: float = 15.0
    """Allowance for Locust to stop and write its output; past it the run is killed."""
    progress_interval_s: float = 5.0
    """How often ``on_progress`` is called."""
    on_progress: Callable[[LoadProgress], None] | None = None
    """Called every ``progress_interval_s`` while Locust runs."""
    stop_when: Callable[[LoadProgress], bool] | None = None
    """Asked at every poll while Locust runs; ``True`` ends the load before ``run_time_s``
    (SIGINT, once Locust sends requests: it writes its output as at the end of ``-t``;
    ``LoadResult.stopped_early``)."""
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    """The target's timeouts; ``poll_interval`` paces the checks on the running Locust."""

    @property
    def hard_timeout_s(self) -> float:
        """The longest the whole run may take before it is killed."""
        return self.startup_s + self.run_time_s + self.stop_s

    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first bad option."""
        what = f"load plan for {self.locustfile.name}"
        scheme = urlsplit(self.host).scheme
        if scheme not in ("http", "https") or not urlsplit(self.host).hostname:
            raise ConfigError(f"{what}: host must be an http(s) URL, got {redact_url(self.host)!r}")
        if self.users < 1:
            raise ConfigError(f"{what}: users must be at least 1, got {self.users}")
        if not (self.spawn_rate > 0 and math.isfinite(self.spawn_rate)):
            raise ConfigError(f"{what}: spawn_rate must be positive, got {self.spawn_rate}")
        if not (self.run_time_s >= 1 and math.isfinite(self.run_time_s)):
            raise ConfigError(f"{what}: run_time_s must be at least 1 s, got {self.run_time_s}")
        if self.shape not in ("steady", "step"):
            raise ConfigError(f"{what}: shape must be 'steady' or 'step', got {self.shape!r}")
        if self.shape == "step" and (self.step_users < 1 or self.step_s <= 0):
            raise ConfigError(f"{what}: shape 'step' needs step_users >= 1 and step_s > 0")
        if self.workers < 0:
            raise ConfigError(
                f"{what}: workers must be 0 (single process) or more, got {self.workers}"
            )
        if self.workers and self.users < self.workers:
            raise ConfigError(
                f"{what}: {self.workers} workers need at least as many users, got {self.users}"
            )
        for key in self.options:
            if not key or key.startswith("-") or any(c.isspace() for c in key):
                raise ConfigError(f"{what}: option names are given without dashes, got {key!r}")
        for key in self.secret_env:
            if not key or "=" in key:
                raise ConfigError(f"{what}: bad environment variable name {key!r}")
        if not self.locustfile.is_file():
            raise ConfigError(f"{what}: locustfile {os.fspath(self.locustfile)!r} does not exist")


def redact_url(url: str) -> str:
    """``url`` with any user:password removed."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{netloc}").geturl()
