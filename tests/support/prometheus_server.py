"""A real Prometheus (Debian's ``prometheus`` / ``promtool``) on loopback, for tests.

Data gets in by backfill, not by scraping: ``promtool tsdb create-blocks-from
openmetrics`` writes blocks into the storage directory before the server
starts, so samples carry exactly the timestamps a test chose and no scrape
interval has to pass. Query them at those timestamps (``time=`` of an instant
query), e.g. through ``prometheus_api_client.PrometheusConnect``.

    with running_prometheus(tmp_path, openmetrics=text) as prom:
        PrometheusConnect(prom.url).custom_query("up", params={"time": 1_700_000_000})
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from meshproof.errors import LabError
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually

__all__ = [
    "PrometheusServer",
    "backfill_openmetrics",
    "missing_binaries",
    "running_prometheus",
]

_START_ATTEMPTS = 3  # a free port can be taken between probing and binding


@dataclass(frozen=True, slots=True)
class PrometheusServer:
    """A running test Prometheus."""

    url: str
    """Base URL, e.g. ``http://127.0.0.1:40123``."""
    data_dir: Path
    """Its TSDB storage directory."""
    log_path: Path
    """Where its stdout and stderr go."""
    pid: int
    """Its process id (stopped when the context exits)."""


def _binary(name: str) -> str | None:
    override = os.environ.get(f"{name.upper()}_BIN")
    return override or shutil.which(name)


def missing_binaries() -> list[str]:
    """The names of ``prometheus`` / ``promtool`` not found (``PROMETHEUS_BIN``/``PROMTOOL_BIN`` override PATH)."""
    return [name for name in ("prometheus", "promtool") if _binary(name) is None]


def backfill_openmetrics(text: str, data_dir: Path) -> None:
    """Write OpenMetrics ``text`` (``# EOF`` is appended if missing) as TSDB blocks into ``data_dir``."""
    promtool = _binary("promtool")
    if promtool is None:
        raise LabError("backfill into the test Prometheus: promtool is not installed")
    data_dir.mkdir(parents=True, exist_ok=True)
    if not text.rstrip().endswith("# EOF"):
        text = text.rstrip("\n") + "\n# EOF\n"
    source = data_dir.parent / f"{data_dir.name}.om"
    source.write_text(text)
    done = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        timeout=DEFAULT_TIMEOUTS.api_request,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(
            f"backfill into the test Prometheus at {data_dir}: promtool exited "
            f"{done.returncode}: {done.stderr.strip() or done.stdout.strip()}"
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=DEFAULT_TIMEOUTS.lab_stop)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=DEFAULT_TIMEOUTS.lab_stop)


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _start(
    binary: str, work_dir: Path, data_dir: Path
) -> tuple[subprocess.Popen[bytes], str, Path]:
    config = work_dir / "prometheus.yml"
    # No scrape jobs: the data comes from backfill, and scraping itself would add series.
    config.write_text("global:\n  evaluation_interval: 1h\nscrape_configs: []\n")
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = _free_port()
        log_path = work_dir / f"prometheus-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data_dir}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=100y",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        url = f"http://127.0.0.1:{port}"

        def ready(process: subprocess.Popen[bytes] = process, url: str = url) -> bool:
            if process.poll() is not None:
                return False
            try:
                answer = requests.get(f"{url}/-/ready", timeout=DEFAULT_TIMEOUTS.poll_interval)
            except requests.RequestException as exc:
                raise AssertionError(f"not answering: {exc}") from exc
            assert answer.status_code == 200, f"/-/ready answered {answer.status_code}"
            return True

        try:
            up = eventually(
                ready,
                timeout=DEFAULT_TIMEOUTS.api_request,
                interval=0.1,
                what=f"test Prometheus on {url} to become ready",
            )
        except BaseException:
            _stop(process)
            raise
        if up:
            return process, url, log_path
    raise LabError(
        f"start the test Prometheus in {work_dir}: it exited {_START_ATTEMPTS} times "
        f"(last log: {_log_tail(log_path)})"
    )


@contextmanager
def running_prometheus(
    work_dir: Path, *, openmetrics: str | None = None
) -> Iterator[PrometheusServer]:
    """Start Prometheus on 127.0.0.1 (free port, storage under ``work_dir``), yield it, stop it.

    ``openmetrics`` is backfilled before the start. Waits (bounded by
    ``Timeouts.api_request``) until ``/-/ready`` answers 200; on exit the process is
    terminated and waited for (killed after ``Timeouts.lab_stop``).
    """
    binary = _binary("prometheus")
    if binary is None:
        raise LabError("start the test Prometheus: the prometheus binary is not installed")
    data_dir = work_dir / "data"
    if openmetrics is not None:
        backfill_openmetrics(openmetrics, data_dir)
    process, url, log_path = _start(binary, work_dir, data_dir)
    try:
        yield PrometheusServer(url=url, data_dir=data_dir, log_path=log_path, pid=process.pid)
    finally:
        _stop(process)
