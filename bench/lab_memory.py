"""Lab footprint: resident memory of the whole lab process tree with the mesh running.

The tree is the lab daemon and every process below it (API servers,
controllers, pods: istiod, gateways, sidecars, apps, Prometheus, Consul,
cert-manager). It is sampled every ``INTERVAL_S`` for ``SAMPLES`` samples after
``lab up`` returns Ready; the figure is the highest sum of RSS (shared pages
counted once per process, so an upper bound), with the sum of PSS (shared pages
split between their users) beside it. The baseline is the daemon alone.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import psutil

from bench.figure import Figure, run_benchmark
from bench.labs import bench_lab

__all__ = ["GOAL_BYTES", "TreeMemory", "main", "measure", "tree_memory"]

NAME = "lab_memory"
GOAL_BYTES = 2 * 1024**3
SAMPLES = 10
INTERVAL_S = 2.0
MIB = 1024**2


@dataclass(frozen=True, slots=True)
class TreeMemory:
    """Memory of one process tree at one moment."""

    processes: int
    rss: int
    pss: int
    root_rss: int


def tree_memory(pid: int) -> TreeMemory:
    """RSS and PSS summed over ``pid`` and all its descendants (exited processes skipped)."""
    root = psutil.Process(pid)
    rss = pss = count = 0
    root_rss = root.memory_info().rss
    for proc in [root, *root.children(recursive=True)]:
        try:
            full = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += full.rss
        pss += getattr(full, "pss", full.rss)
        count += 1
    return TreeMemory(count, rss, pss, root_rss)


def measure() -> Figure:
    with bench_lab() as lab:
        pid = lab.daemon_pid
        samples = []
        for _ in range(SAMPLES):
            sample = tree_memory(pid)
            samples.append(sample)
            print(f"{sample.processes} processes: RSS {sample.rss / MIB:.0f} MiB, "
                  f"PSS {sample.pss / MIB:.0f} MiB", flush=True)
            time.sleep(INTERVAL_S)
    peak = max(samples, key=lambda s: s.rss)
    text = (f"lab with the mesh: {peak.rss / MIB:.0f} MiB RSS summed over {peak.processes} "
            f"processes (PSS {peak.pss / MIB:.0f} MiB; the daemon alone "
            f"{peak.root_rss / MIB:.0f} MiB)")
    return Figure(NAME, text, f"<= {GOAL_BYTES / 1024**3:g} GiB", peak.rss <= GOAL_BYTES)


def main() -> int:
    return run_benchmark(NAME, measure)


if __name__ == "__main__":
    sys.exit(main())
