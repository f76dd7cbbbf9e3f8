"""The results table of docs/benchmarks.md, rewritten by ``python -m bench --docs``.

The table sits between ``<!-- bench:results:start -->`` and
``<!-- bench:results:end -->``; a run replaces the rows of the benchmarks it
ran and the machine line, and keeps every other row as it was.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench import BENCHMARKS
from bench.figure import Figure

__all__ = ["END", "START", "Result", "machine", "render_table", "update_results"]

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"
_HEADER = ("| benchmark | figure | goal | goal met | measured |\n"
           "| --- | --- | --- | --- | --- |")


@dataclass(frozen=True, slots=True)
class Result:
    """How one benchmark ended."""

    name: str
    figure: Figure | None
    """None when it could not run."""
    last_line: str
    seconds: float

    def summary(self) -> str:
        if self.figure is None:
            return self.last_line or f"{self.name}: could not run"
        return self.figure.line()

    def row(self, day: str) -> str:
        if self.figure is None:
            reason = self.last_line.partition("could not run:")[2].strip() or "no figure"
            cells = (self.name, f"could not run: {reason}", "", "—", day)
        else:
            cells = (self.name, self.figure.text, self.figure.goal,
                     "yes" if self.figure.met else "**no**", day)
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def machine() -> str:
    """One line naming the machine the numbers come from."""
    cpu = platform.processor() or platform.machine()
    memory = psutil.virtual_memory().total / 1024**3
    return (f"Machine: {os.cpu_count()} CPUs ({cpu}), {memory:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}; "
            f"last run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.")


def render_table(rows: dict[str, str], machine_line: str) -> str:
    ordered = [rows[n] for n in BENCHMARKS if n in rows]
    ordered += [row for name, row in rows.items() if name not in BENCHMARKS]
    return "\n".join([START, machine_line, "", _HEADER, *ordered, END])


def _existing_rows(block: str) -> dict[str, str]:
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("benchmark", "---"):
            rows[cells[0]] = line
    return rows


def update_results(path: Path, results: list[Result], machine_line: str) -> None:
    """Replace the rows of ``results`` in ``path``'s results table (added at the end if absent)."""
    text = path.read_text() if path.exists() else ""
    day = f"{datetime.now(UTC):%Y-%m-%d}"
    if START in text and END in text:
        before, _, rest = text.partition(START)
        block, _, after = rest.partition(END)
    else:
        before, block, after = (text.rstrip("\n") + "\n\n" if text else ""), "", "\n"
    rows = _existing_rows(block)
    rows.update({r.name: r.row(day) for r in results})
    path.write_text(before + render_table(rows, machine_line) + after)
