"""Nightly overhead: wall time of a nightly run on the lab ÷ the time it observes the mesh.

The nightly does not wait out each guarantee's catalog window: its checks read
Prometheus over the window afterwards (``increase(...[window])``), and the
windows overlap. What a run must spend is the time it exercises the mesh —
the probe agents' calls, the traffic whose requests, handshakes and latencies
every window-based check then judges. The observed time is therefore the span
from the first to the last call the run made to a probe agent, read from the
lab API servers' request logs (each line is written when the call ends). The
overhead is everything else: starting pytest, deploying and removing the
probes, waiting for scrapes, the checks' own reads and the reports.

Shown beside it: the wall time ÷ the time the probes were busy (the stretches
in which calls ended less than ``BUSY_GAP_S`` apart: the waits between, for
scrapes and the checks' reads, count as overhead there), and ÷ the sum of the effective windows of
its guarantees (the catalog's ``window_s`` with the lab's overrides), a
figure that only says how far the run is from waiting each window out.
"""

from __future__ import annotations

import itertools
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.figure import CannotRun, Figure, run_benchmark
from bench.labs import bench_lab, meshproof_command
from meshproof.lab.kube.requestlog import RequestRecord, read_request_log
from meshproof.lab.state import LabPaths
from meshproof.probe.fleet import ProbeFleet
from meshproof.timeouts import DEFAULT_TIMEOUTS

__all__ = ["GOAL_RATIO", "ProbeActivity", "main", "measure", "probe_activity"]

NAME = "nightly_overhead"
GOAL_RATIO = 1.2
RUN_LIMIT_S = 900.0
BUSY_GAP_S = 5.0
"""Probe calls ending closer than this belong to one stretch of traffic (a call of 50
requests takes a few seconds)."""
# Every run's probe namespace starts so (``meshproof-probe-<run id>``).
PROBE_NAMESPACE_PREFIX = ProbeFleet(apis={}, run_id="", timeouts=DEFAULT_TIMEOUTS).namespace


def _is_probe_call(record: RequestRecord) -> bool:
    return (record.resource == "pods" and record.subresource == "proxy"
            and record.namespace.startswith(PROBE_NAMESPACE_PREFIX))


@dataclass(frozen=True, slots=True)
class ProbeActivity:
    """When a run's probe agents were called, from the lab's request logs."""

    calls: int
    span_s: float
    """From the first to the last call (every cluster)."""
    busy_s: float
    """The stretches in which calls ended less than ``BUSY_GAP_S`` apart, summed."""


def probe_activity(paths: LabPaths) -> ProbeActivity:
    """The probe agent calls of every cluster's request log."""
    times = sorted(datetime.fromisoformat(r.time.replace("Z", "+00:00")).timestamp()
                   for log in sorted(paths.logs.glob("*-requests.log"))
                   for r in read_request_log(log) if _is_probe_call(r))
    if len(times) < 2:
        raise CannotRun(f"the run made {len(times)} probe calls; the lab's request logs in "
                        f"{paths.logs} show no observation")
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    return ProbeActivity(len(times), times[-1] - times[0],
                         sum(g for g in gaps if g < BUSY_GAP_S))


def _windows(report: dict[str, Any]) -> dict[str, int]:
    return {str(g["id"]): int(g["thresholds"]["window_s"]) for g in report.get("guarantees", [])}


def measure() -> Figure:
    with bench_lab() as lab, tempfile.TemporaryDirectory(prefix="meshproof-bench-") as reports:
        began = time.monotonic()
        run = meshproof_command("run", "--target", "lab", "--profile", "nightly",
                                "--report-dir", reports, env=lab.env, timeout=RUN_LIMIT_S,
                                cwd=lab.paths.root.parent)
        wall = time.monotonic() - began
        print(run.stdout.strip().splitlines()[-1] if run.stdout.strip() else "(no output)",
              flush=True)
        if run.returncode not in (0, 1):
            last = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
            raise CannotRun(f"meshproof run exited {run.returncode}: {last[0]}")
        report_file = Path(reports) / "report.json"
        windows = _windows(json.loads(report_file.read_text())) if report_file.exists() else {}
        probes = probe_activity(lab.paths)
    ratio = wall / probes.span_s
    print(f"wall {wall:.1f} s; {probes.calls} probe calls over {probes.span_s:.1f} s, busy "
          f"{probes.busy_s:.1f} s; {len(windows)} guarantees, windows summing to "
          f"{sum(windows.values())} s", flush=True)
    text = (f"nightly wall {wall:.1f} s / observed {probes.span_s:.1f} s (first to last of "
            f"{probes.calls} probe calls) = {ratio:.2f} (exit {run.returncode}; wall / the "
            f"{probes.busy_s:.0f} s the probes were busy = {wall / max(1.0, probes.busy_s):.2f}; "
            f"wall / sum of {len(windows)} effective windows {sum(windows.values())} s = "
            f"{wall / max(1, sum(windows.values())):.2f})")
    return Figure(NAME, text, f"<= {GOAL_RATIO:g}", ratio <= GOAL_RATIO)


def main() -> int:
    return run_benchmark(NAME, measure)


if __name__ == "__main__":
    sys.exit(main())
