"""A lab of its own for a benchmark: started with ``meshproof lab up`` in a fresh directory.

The lab is started the way a user starts it (the CLI, in a subprocess) and is
always taken down again; ``MESHPROOF_LAB_OWNER_PID`` makes its daemon stop by
itself should the benchmark die first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.figure import CannotRun
from meshproof.lab.state import LabPaths, read_lab_json
from meshproof.timeouts import DEFAULT_TIMEOUTS

__all__ = ["BenchLab", "bench_lab", "meshproof_command"]


@dataclass(frozen=True, slots=True)
class BenchLab:
    """A running lab and how long ``lab up`` took to return Ready."""

    paths: LabPaths
    ready_s: float
    env: dict[str, str]
    """Environment for ``meshproof`` subprocesses that should reach this lab."""

    @property
    def daemon_pid(self) -> int:
        data = read_lab_json(self.paths.lab_json)
        if not data or not isinstance(data.get("pid"), int):
            raise CannotRun(f"the lab in {self.paths.root} wrote no daemon pid")
        return int(data["pid"])


def meshproof_command(*args: str, env: dict[str, str], timeout: float,
                      cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``meshproof ARGS`` with this interpreter; output captured."""
    return subprocess.run([sys.executable, "-m", "meshproof", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


@contextmanager
def bench_lab(*, bare: bool = False) -> Iterator[BenchLab]:
    """``meshproof lab up [--bare]`` in a temporary directory, timed; ``lab down`` afterwards."""
    root = Path(tempfile.mkdtemp(prefix="meshproof-bench-"))
    paths = LabPaths(root / "lab")
    env = {**os.environ, "MESHPROOF_LAB_DIR": str(paths.root),
           "KUBECONFIG": str(paths.kubeconfig), "MESHPROOF_LAB_OWNER_PID": str(os.getpid())}
    limit = DEFAULT_TIMEOUTS.lab_ready + DEFAULT_TIMEOUTS.lab_stop
    try:
        began = time.monotonic()
        up = meshproof_command("lab", "up", *(["--bare"] if bare else []), env=env,
                               timeout=limit, cwd=root)
        ready_s = time.monotonic() - began
        if up.returncode != 0:
            last = (up.stderr or up.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CannotRun(f"meshproof lab up{' --bare' if bare else ''} failed: {last[0]}")
        yield BenchLab(paths, ready_s, env)
    finally:
        try:
            meshproof_command("lab", "down", env=env, timeout=DEFAULT_TIMEOUTS.lab_stop * 2,
                              cwd=root)
        except subprocess.TimeoutExpired:
            print(f"lab down did not finish; its daemon stops with this process ({root})",
                  file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
