"""What run_load says when it cannot run the load, and how it bounds a stuck Locust."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from meshproof.errors import ConfigError
from meshproof.load import LoadPlan, bundled_locustfile, run_load
from tests.support.load_servers import load_target

pytestmark = pytest.mark.load

LOCUSTFILES = Path(__file__).parent / "locustfiles"


def _plan(locustfile: Path, host: str, tmp_path: Path, **changes: object) -> LoadPlan:
    fields: dict[str, object] = {
        "locustfile": locustfile,
        "host": host,
        "users": 1,
        "run_time_s": 1,
        "output_dir": tmp_path,
    }
    fields.update(changes)
    return LoadPlan(**fields)  # type: ignore[arg-type]


def test_missing_locustfile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        run_load(_plan(tmp_path / "nope.py", "http://127.0.0.1:9", tmp_path))


def test_locust_not_installed(tmp_path: Path) -> None:
    # An interpreter that cannot find locust (it finds nothing at all).
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    plan = _plan(
        bundled_locustfile("helloworld"), "http://127.0.0.1:9", tmp_path, python=str(python)
    )
    with pytest.raises(ConfigError, match="locust is not installed"):
        run_load(plan)


def test_broken_locustfile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="before running"):
        run_load(_plan(LOCUSTFILES / "broken.py", "http://127.0.0.1:9", tmp_path))


def test_option_locust_rejects(tmp_path: Path) -> None:
    plan = _plan(
        bundled_locustfile("helloworld"),
        "http://127.0.0.1:9",
        tmp_path,
        options={"no-such-option": "1"},
    )
    with pytest.raises(ConfigError, match="rejected its options"):
        run_load(plan)


def test_locustfile_without_recorder(tmp_path: Path) -> None:
    with load_target() as target, pytest.raises(ConfigError, match="recorded none"):
        run_load(_plan(LOCUSTFILES / "unrecorded.py", target.url, tmp_path))


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def test_stuck_locust_is_killed_at_its_bound(tmp_path: Path) -> None:
    plan = _plan(
        LOCUSTFILES / "slow_start.py",
        "http://127.0.0.1:9",
        tmp_path,
        startup_s=1,
        stop_s=1,
    )
    result = run_load(plan)
    assert result.overran
    assert result.requests == 0
    took = (result.ended_at - result.started_at).total_seconds()
    assert took < plan.hard_timeout_s + 2
    assert _processes_mentioning(str(tmp_path)) == []
