"""Time-to-detect: a break switch flipped during ``meshproof run --watch``, until the watch
records the violated verdict.

On a lab with the mesh, ``meshproof run --target lab --profile nightly --watch``
runs with the target's own ``watch_interval``. Once its first round has ended
with ``SWITCH_GUARANTEE`` held (the baseline: a healthy round, and how long a round
takes), ``meshproof lab break SWITCH`` is flipped at once, as the next round
starts (or waits for its interval), and ``watch.json`` is read every
``poll_interval`` until it records ``SWITCH_GUARANTEE``: held -> violated. The
time from the flip's return to that record is the figure. A flip as a round
starts is the watch's best case (the round's check comes after the flip); a
flip after a round's check waits a further round.

Goal: at most one scrape interval plus one probe interval. The scrape interval
is read from the target's Prometheus (``scrapeInterval`` of its active targets,
``/api/v1/targets``, the longest of any target and cluster); the probe interval
is how often the watch probes the mesh, the target's ``watch_interval``
(timeouts config).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from bench.figure import CannotRun, Figure, run_benchmark
from bench.labs import bench_lab, meshproof_command
from meshproof.target import PrometheusSettings, load_target
from meshproof.waiting import eventually

__all__ = ["SWITCH", "SWITCH_GUARANTEE", "duration_s", "main", "measure", "scrape_interval_s",
           "violation_recorded"]

NAME = "time_to_detect"
SWITCH = "mtls-permissive"
"""The break switch flipped (DESIGN.md: production PERMISSIVE where STRICT is promised)."""
SWITCH_GUARANTEE = "MTLS-STRICT"
"""The guarantee ``SWITCH`` violates."""
WATCH_LIMIT_S = 720.0
"""``--duration`` of the watch: it stops by itself should this benchmark die."""

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_s(text: str) -> float:
    """A Prometheus duration (``15s``, ``1m30s``, ``500ms``) in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def scrape_interval_s(intervals: list[str]) -> float:
    """The longest of the scrape intervals Prometheus reports (its ``interval`` labels)."""
    if not intervals:
        raise CannotRun("Prometheus reports no scrape interval "
                        "(prometheus_target_interval_length_seconds has no series)")
    return max(duration_s(i) for i in intervals)


def violation_recorded(record: dict[str, Any], guarantee: str, after_round: int
                       ) -> dict[str, Any] | None:
    """The watch's first recorded change of ``guarantee`` to violated after round
    ``after_round``; None while there is none."""
    for change in record.get("changes") or []:
        if (change.get("guarantee") == guarantee and change.get("after") == "violated"
                and int(change.get("round", 0)) > after_round):
            return dict(change)
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _round_verdict(record: dict[str, Any], number: int) -> str | None:
    for entry in record.get("rounds") or []:
        if entry.get("round") == number:
            return str((entry.get("verdicts") or {}).get(SWITCH_GUARANTEE, "none"))
    return None


def _active_targets(prometheus: PrometheusSettings, timeout: float) -> list[dict[str, Any]]:
    """The active scrape targets of a cluster's Prometheus (``/api/v1/targets``), reached
    with the target's token and TLS settings."""
    token = prometheus.bearer_token
    session = requests.Session()
    session.verify = str(prometheus.ca_file) if prometheus.ca_file else (
        not prometheus.insecure_skip_verify)
    client = PrometheusConnect(
        url=prometheus.url, session=session, timeout=int(timeout),
        headers={"Authorization": f"Bearer {token.get_secret_value()}"} if token else None,
        disable_ssl=prometheus.insecure_skip_verify)
    # Each active target carries its job's "scrapeInterval"
    # (https://prometheus.io/docs/prometheus/latest/querying/api/#targets).
    try:
        data = client.get_targets(state="active")
    except (PrometheusApiClientException, requests.RequestException) as exc:
        raise CannotRun(f"cannot read the scrape targets of {prometheus.url}: "
                        f"{type(exc).__name__}") from exc
    return list(data.get("activeTargets") or [])


def measure() -> Figure:
    with bench_lab() as lab, tempfile.TemporaryDirectory(prefix="meshproof-bench-") as reports:
        target = load_target(str(lab.paths.target))
        timeouts = target.resolved_timeouts
        intervals = sorted({str(active.get("scrapeInterval") or "")
                            for cluster in target.clusters if cluster.prometheus is not None
                            for active in _active_targets(cluster.prometheus,
                                                          timeouts.api_request)} - {""})
        scrape_s = scrape_interval_s(intervals)
        probe_s = timeouts.watch_interval
        goal_s = scrape_s + probe_s
        print(f"scrape interval {scrape_s:g} s (Prometheus: {', '.join(intervals)}); probe "
              f"interval (watch_interval) {probe_s:g} s; goal {goal_s:g} s", flush=True)
        record_file = Path(reports) / "watch.json"
        console = Path(reports) / "watch-console.log"
        began = time.monotonic()
        with console.open("w") as out:
            watch = subprocess.Popen(
                [sys.executable, "-m", "meshproof", "run", "--target", "lab", "--profile",
                 "nightly", "--watch", "--duration", f"{WATCH_LIMIT_S:g}", "--report-dir",
                 reports], env=lab.env, cwd=lab.paths.root.parent, stdout=out,
                stderr=subprocess.STDOUT, text=True)
        try:
            return _detect(watch, record_file, console, began, scrape_s, probe_s,
                           timeouts.poll_interval, lab.env, lab.paths.root.parent)
        finally:
            if watch.poll() is None:
                watch.send_signal(signal.SIGTERM)
                try:
                    watch.wait(timeout=timeouts.lab_stop * 2)
                except subprocess.TimeoutExpired:
                    watch.kill()
                    watch.wait()


def _detect(watch: subprocess.Popen[str], record_file: Path, console: Path, began: float,
            scrape_s: float, probe_s: float, poll_s: float, env: dict[str, str],
            cwd: Path) -> Figure:
    def round_one() -> str:
        if watch.poll() is not None:
            raise CannotRun(f"the watch ended (exit {watch.returncode}) before its first "
                            f"round: {_tail(console)}")
        verdict = _round_verdict(_read(record_file), 1)
        assert verdict is not None, "round 1 still running"
        return verdict

    first = eventually(round_one, timeout=WATCH_LIMIT_S / 2, interval=poll_s,
                       what="the watch's first round")
    round_s = time.monotonic() - began
    if first != "held":
        raise CannotRun(f"{SWITCH_GUARANTEE} was {first} in the healthy lab's first round, "
                        "so its violation cannot be timed")
    print(f"round 1 ended after {round_s:.1f} s with {SWITCH_GUARANTEE} held", flush=True)
    flip = meshproof_command("lab", "break", SWITCH, env=env, timeout=60, cwd=cwd)
    if flip.returncode != 0:
        raise CannotRun(f"meshproof lab break {SWITCH} failed: "
                        f"{(flip.stderr or flip.stdout).strip()}")
    flipped = time.monotonic()

    def recorded() -> dict[str, Any]:
        if watch.poll() is not None:
            raise CannotRun(f"the watch ended (exit {watch.returncode}) without recording "
                            f"{SWITCH_GUARANTEE} violated: {_tail(console)}")
        change = violation_recorded(_read(record_file), SWITCH_GUARANTEE, 1)
        assert change is not None, "not recorded yet"
        return change

    change = eventually(recorded, timeout=WATCH_LIMIT_S / 2, interval=poll_s,
                        what=f"{SWITCH_GUARANTEE} violated in watch.json")
    detect_s = time.monotonic() - flipped
    goal_s = scrape_s + probe_s
    print(f"recorded in round {change['round']}: {change['reason']}", flush=True)
    text = (f"{SWITCH} flipped as watch round 1 ended; {SWITCH_GUARANTEE} held -> violated "
            f"recorded {detect_s:.1f} s later (round {change['round']}; a round of the nightly "
            f"profile took {round_s:.1f} s; scrape interval {scrape_s:g} s + probe interval "
            f"{probe_s:g} s = {goal_s:g} s)")
    return Figure(NAME, text, "<= one scrape interval + one probe interval",
                  detect_s <= goal_s)


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else "no output"


def main() -> int:
    return run_benchmark(NAME, measure)


if __name__ == "__main__":
    sys.exit(main())
