"""The one line a benchmark ends with, and how a benchmark module runs."""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from meshproof.errors import MeshproofError

__all__ = ["CANNOT_RUN", "CannotRun", "Figure", "parse_figure_line", "run_benchmark"]

CANNOT_RUN = 2
"""Exit code of a benchmark that could not measure (no lab, a tool missing, a step failed)."""


class CannotRun(Exception):
    """The benchmark could not measure; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Figure:
    """What a benchmark measured, beside its goal."""

    name: str
    """The benchmark (its module name)."""
    text: str
    """The measured figure and the baseline it is compared with, in words and numbers."""
    goal: str
    """The goal, as docs/benchmarks.md states it."""
    met: bool
    """Whether the figure meets the goal."""

    def line(self) -> str:
        """``<name>: <figure>; goal <goal>: met|missed``."""
        return f"{self.name}: {self.text}; goal {self.goal}: {'met' if self.met else 'missed'}"


_LINE = re.compile(r"^(?P<name>[a-z_]+): (?P<text>.*); goal (?P<goal>.*): (?P<met>met|missed)$")


def parse_figure_line(line: str) -> Figure | None:
    """The figure a benchmark printed last; None when the line is not one."""
    match = _LINE.match(line.strip())
    if match is None:
        return None
    return Figure(match["name"], match["text"], match["goal"], match["met"] == "met")


def run_benchmark(name: str, measure: Callable[[], Figure]) -> int:
    """Run ``measure``, print its figure as the last line; exit code 0, or 2 if it cannot run."""
    try:
        figure = measure()
    except (CannotRun, MeshproofError, OSError) as exc:
        print(f"{name}: could not run: {exc}", flush=True)
        return CANNOT_RUN
    except KeyboardInterrupt:
        print(f"{name}: could not run: interrupted", flush=True)
        return CANNOT_RUN
    except Exception as exc:  # an unexpected failure still ends in one line
        traceback.print_exc(file=sys.stderr)
        print(f"{name}: could not run: {type(exc).__name__}: {exc}", flush=True)
        return CANNOT_RUN
    print(figure.line(), flush=True)
    return 0
