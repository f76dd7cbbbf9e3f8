"""Lab start: wall time of ``meshproof lab up`` until it returns Ready, bare and with the mesh.

The bare lab (the two Kubernetes clusters alone, ``--bare``) is the baseline
taken in the same run; the goal is on the lab with the mesh installed, which
is what ``make certify`` waits for.
"""

from __future__ import annotations

import sys

from bench.figure import Figure, run_benchmark
from bench.labs import bench_lab

__all__ = ["GOAL_S", "main", "measure"]

NAME = "lab_ready"
GOAL_S = 20.0


def measure() -> Figure:
    with bench_lab(bare=True) as bare:
        print(f"bare lab Ready in {bare.ready_s:.1f} s", flush=True)
    with bench_lab() as mesh:
        print(f"mesh lab Ready in {mesh.ready_s:.1f} s", flush=True)
    text = (f"lab up with the mesh Ready in {mesh.ready_s:.1f} s "
            f"(bare clusters {bare.ready_s:.1f} s: the mesh install adds "
            f"{mesh.ready_s - bare.ready_s:.1f} s)")
    return Figure(NAME, text, f"<= {GOAL_S:g} s with the mesh", mesh.ready_s <= GOAL_S)


def main() -> int:
    return run_benchmark(NAME, measure)


if __name__ == "__main__":
    sys.exit(main())
