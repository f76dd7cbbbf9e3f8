"""The target-file corpus under tests/data/targets (shared by the target and CLI tests).

Each malformed file in ``bad/`` starts with comment lines ``# why: ...`` (what is
wrong) and ``# expect: ...`` (a fragment the one-line error must contain).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["GOOD_TARGETS", "TARGETS_DIR", "BadTarget", "bad_targets"]

TARGETS_DIR = Path(__file__).resolve().parents[1] / "data" / "targets"
GOOD_TARGETS = sorted((TARGETS_DIR / "good").glob("*.yaml"))


@dataclass(frozen=True)
class BadTarget:
    path: Path
    why: str
    expect: str


def bad_targets() -> list[BadTarget]:
    """Every file of the malformed corpus with its declared expectation."""
    out = []
    for path in sorted((TARGETS_DIR / "bad").glob("*.yaml")):
        # latin-1 reads every byte, so even the deliberately non-UTF-8 file has a header.
        header = path.read_bytes().decode("latin-1").splitlines()
        meta = {
            line[2:].split(":", 1)[0]: line.split(":", 1)[1].strip()
            for line in header
            if line.startswith("# ") and ":" in line
        }
        out.append(BadTarget(path, meta["why"], meta["expect"]))
    return out
