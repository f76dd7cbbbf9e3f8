"""``meshproof compare BASELINE CURRENT``: did anything regress between two runs?

Two reports (``report.json`` files, or the report directories holding them)
are compared guarantee by guarantee:

- a **verdict change** from held to violated, or from held to not measurable
  (what was proven before can no longer be proven), is a regression;
- every **SLI share** both runs recorded with its counts (success ratios:
  ``good`` of ``total``; latency: requests at or under the bound of all
  ``observations``) is compared by a one-sided two-proportion test
  (``meshproof.sli.compare.worse_share_test``); a share significantly lower
  at level ``alpha`` is a regression even when the verdict is still held.

The answer is **go** (exit 0) when nothing regressed, **no-go** (exit 1)
naming the guarantees that did. Guarantees only one run checked are listed,
not judged.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshproof.errors import ConfigError
from meshproof.report.model import REPORT_SCHEMA, GuaranteeResult, Report
from meshproof.sli.compare import ShareChange, worse_share_test
from meshproof.sli.verdict import Verdict

__all__ = [
    "DEFAULT_ALPHA",
    "Comparison",
    "GuaranteeChange",
    "SliChange",
    "compare_command",
    "compare_reports",
    "load_report",
    "render_comparison",
]

DEFAULT_ALPHA = 0.01
"""The false-alarm rate of each SLI comparison (``meshproof compare --alpha``)."""


@dataclass(frozen=True, slots=True)
class GuaranteeChange:
    """One guarantee's verdict in both runs (``None``: the run did not check it)."""

    id: str
    baseline: Verdict | None
    current: Verdict | None

    @property
    def change(self) -> str:
        """``regressed`` · ``lost`` (no longer measurable) · ``improved`` · ``same`` ·
        ``only in baseline`` · ``only in current``."""
        if self.current is None:
            return "only in baseline"
        if self.baseline is None:
            return "only in current"
        if self.baseline is self.current:
            return "same"
        if self.baseline is Verdict.HELD:
            return "regressed" if self.current is Verdict.VIOLATED else "lost"
        return "improved" if self.current is Verdict.HELD else "changed"

    @property
    def regressed(self) -> bool:
        return self.change in ("regressed", "lost")


@dataclass(frozen=True, slots=True)
class SliChange:
    """One counted share both runs measured, and whether it got significantly worse."""

    guarantee: str
    cluster: str
    what: str
    """The judgement's subject (``requests aws-eks → gcp-gke``)."""
    kind: str
    """``share`` (good of total) or ``share <= N ms`` (requests under the bound)."""
    test: ShareChange
    regressed: bool


@dataclass(frozen=True, slots=True)
class Comparison:
    """The comparison of two runs."""

    baseline: str
    current: str
    alpha: float
    guarantees: tuple[GuaranteeChange, ...]
    slis: tuple[SliChange, ...]

    @property
    def regressed(self) -> tuple[str, ...]:
        """Guarantee ids that regressed, by verdict or by an SLI, in report order."""
        ids = [g.id for g in self.guarantees if g.regressed]
        ids += [s.guarantee for s in self.slis if s.regressed]
        return tuple(dict.fromkeys(ids))

    @property
    def go(self) -> bool:
        return not self.regressed

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (``meshproof compare --json``)."""
        return {
            "schema": "meshproof.compare/v1",
            "baseline": self.baseline,
            "current": self.current,
            "alpha": self.alpha,
            "decision": "go" if self.go else "no-go",
            "regressed": list(self.regressed),
            "guarantees": [
                {"id": g.id, "baseline": g.baseline and g.baseline.value,
                 "current": g.current and g.current.value, "change": g.change}
                for g in self.guarantees],
            "slis": [
                {"guarantee": s.guarantee, "cluster": s.cluster, "what": s.what, "kind": s.kind,
                 "baseline_good": s.test.baseline_good, "baseline_total": s.test.baseline_total,
                 "current_good": s.test.current_good, "current_total": s.test.current_total,
                 "p_value": s.test.p_value, "method": s.test.method, "regressed": s.regressed}
                for s in self.slis],
        }


def load_report(path: Path) -> Report:
    """A run's report from ``report.json`` or a directory holding it; ``ConfigError`` if not."""
    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        what = "has no report.json" if path.is_dir() else "does not exist"
        raise ConfigError(f"{path} {what}; give a report directory or a report.json file")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{file} is not a JSON report: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        raise ConfigError(f"{file} is not a meshproof report (schema {REPORT_SCHEMA})")
    try:
        return Report.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{file} is not a complete {REPORT_SCHEMA} report: {exc}") from exc


def _shares(g: GuaranteeResult) -> dict[tuple[str, str, str], tuple[float, float]]:
    """Counted shares of a guarantee's judgements, keyed by (cluster, what, kind)."""
    found: dict[tuple[str, str, str], tuple[float, float]] = {}
    for c in g.clusters:
        for j in c.judgements:
            evidence = j.get("evidence") or {}
            what = str(j.get("reason", "")).split(": ", 1)[0]
            cluster = str(j.get("cluster") or c.cluster)
            share = _counted_share(evidence)
            if share is not None:
                found[(cluster, what, share[0])] = share[1:]
    return found


def _counted_share(evidence: dict[str, Any]) -> tuple[str, float, float] | None:
    """(kind, good, total) when the evidence holds an exact counted share."""
    good, total = _number(evidence.get("good")), _number(evidence.get("total"))
    if good is not None and total:
        return "share", good, total
    observations = _number(evidence.get("observations"))
    low = _number(evidence.get("share_low"))
    bound = _number(evidence.get("threshold_ms"))
    if evidence.get("share_exact") and observations and low is not None and bound is not None:
        return f"share <= {bound:g} ms", low * observations, observations
    return None


def _number(value: Any) -> float | None:
    """``value`` as a float when it is a JSON number (not a bool), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def compare_reports(baseline: Report, current: Report, *, alpha: float = DEFAULT_ALPHA,
                    baseline_name: str = "baseline", current_name: str = "current") -> Comparison:
    """Compare two runs guarantee by guarantee and SLI by SLI."""
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    before = {g.id: g for g in baseline.guarantees}
    after = {g.id: g for g in current.guarantees}
    ids = list(dict.fromkeys([*before, *after]))
    changes = tuple(
        GuaranteeChange(i, before[i].verdict if i in before else None,
                        after[i].verdict if i in after else None) for i in ids)
    slis: list[SliChange] = []
    for i in ids:
        if i not in before or i not in after:
            continue
        old, new = _shares(before[i]), _shares(after[i])
        for key in (k for k in old if k in new):
            test = worse_share_test(*old[key], *new[key])
            slis.append(SliChange(i, key[0], key[1], key[2], test, test.worse(alpha)))
    return Comparison(baseline_name, current_name, alpha, changes, tuple(slis))


def _verdict(v: Verdict | None) -> str:
    return "-" if v is None else v.value.replace("_", " ")


def _pct(share: float) -> str:
    return f"{share * 100:.4g}%"


def render_comparison(comparison: Comparison) -> str:
    """The table a person reads, ending in the go / no-go line."""
    width = max([len(g.id) for g in comparison.guarantees] + [9])
    lines = [f"{'guarantee':<{width}}  {'baseline':<14}  {'current':<14}  change"]
    for g in comparison.guarantees:
        sli_worse = any(s.regressed for s in comparison.slis if s.guarantee == g.id)
        change = g.change.upper() if g.regressed else g.change
        if sli_worse and not g.regressed:
            change = "SLI WORSE"
        lines.append(f"{g.id:<{width}}  {_verdict(g.baseline):<14}  {_verdict(g.current):<14}  "
                     f"{change}")
    if comparison.slis:
        lines.append("")
        lines.append(f"SLIs (one-sided test, alpha {comparison.alpha:g}):")
    for s in comparison.slis:
        t = s.test
        mark = "WORSE" if s.regressed else "no significant drop"
        lines.append(
            f"  {s.guarantee} {s.cluster} {s.what}: {s.kind} {_pct(t.baseline_share)} of "
            f"{t.baseline_total:g} -> {_pct(t.current_share)} of {t.current_total:g}, "
            f"p={t.p_value:.3g} ({t.method}) {mark}")
    lines.append("")
    if comparison.go:
        lines.append(f"go: no guarantee regressed from {comparison.baseline} to "
                     f"{comparison.current}")
    else:
        lines.append(f"no-go: regressed {', '.join(comparison.regressed)}")
    return "\n".join(lines) + "\n"


def compare_command(baseline: Path, current: Path, alpha: float | None, as_json: bool) -> int:
    """``meshproof compare``: print the table (or JSON); 0 go, 1 no-go."""
    comparison = compare_reports(load_report(baseline), load_report(current),
                                 alpha=DEFAULT_ALPHA if alpha is None else alpha,
                                 baseline_name=str(baseline), current_name=str(current))
    if as_json:
        sys.stdout.write(json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_comparison(comparison))
    return 0 if comparison.go else 1
