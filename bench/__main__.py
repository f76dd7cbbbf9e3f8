"""``python -m bench [--docs FILE] [NAME...]``: run benchmarks, each in its own process.

Without names every benchmark of ``bench.BENCHMARKS`` runs, in that order. Each
one's output is passed through; its last line is its figure. With ``--docs``
the results table of that file (between the ``bench:results`` markers) gets a
row per benchmark that ran, keeping the others. Exit code 0 when every
benchmark measured (goals met or not), 2 when any could not run or a name is
unknown.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench import BENCHMARKS
from bench.docs import Result, machine, update_results
from bench.figure import CANNOT_RUN, parse_figure_line

# Longest one benchmark may run; ``make bench`` runs all of them within 20 minutes.
BENCHMARK_LIMIT_S = 900.0


def _run(name: str) -> Result:
    began = time.monotonic()
    last = ""
    try:
        with subprocess.Popen([sys.executable, "-m", f"bench.{name}"], stdout=subprocess.PIPE,
                              text=True, bufsize=1) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                print(f"  {line.rstrip()}", flush=True)
                if line.strip():
                    last = line.strip()
            code = proc.wait(timeout=BENCHMARK_LIMIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        code, last = CANNOT_RUN, f"{name}: could not run: over {BENCHMARK_LIMIT_S:g} s"
    figure = parse_figure_line(last) if code == 0 else None
    return Result(name, figure, last, time.monotonic() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--docs", type=Path, help="update the results table of this file")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        print(f"bench: unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})",
              file=sys.stderr)
        return CANNOT_RUN
    results = []
    for name in args.names or BENCHMARKS:
        print(f"bench: {name}", flush=True)
        results.append(_run(name))
    if args.docs is not None:
        update_results(args.docs, results, machine())
    print()
    for result in results:
        print(f"bench: {result.summary()}")
    measured = [r for r in results if r.figure is not None]
    met = sum(1 for r in measured if r.figure is not None and r.figure.met)
    print(f"bench: {len(measured)}/{len(results)} measured, {met} goals met, "
          f"{sum(r.seconds for r in results):.0f} s")
    return 0 if len(measured) == len(results) else CANNOT_RUN


if __name__ == "__main__":
    sys.exit(main())
