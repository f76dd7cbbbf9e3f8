"""BACKUP-RESTORE's verdict from what a drill measured (pure).

Two parts, both against the catalog's ``min_ratio``: the share of the original
mesh configuration's objects that the restore brought back equal (semantic
comparison, every cluster of the drill), and the share of probe requests
answered 2xx once the restore is done (traffic works again).
"""

from __future__ import annotations

from collections.abc import Mapping

from meshproof.backup.compare import Comparison
from meshproof.catalog import EffectiveThresholds
from meshproof.chaos.judge import combine, judge_traffic
from meshproof.sli.ratios import judge_ratio, success_ratio
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["GUARANTEE", "judge_backup_restore", "judge_restored_config"]

GUARANTEE = "BACKUP-RESTORE"
_LISTED = 20


def judge_restored_config(comparisons: Mapping[str, Comparison], *,
                          required: float) -> Judgement:
    """The share of original objects restored equal, over the clusters of ``comparisons``;
    the reason names the first differences, the evidence lists up to twenty."""
    original = sum(c.original for c in comparisons.values())
    equal = sum(c.equal for c in comparisons.values())
    what = "objects of the exported mesh configuration restored equal"
    judgement = judge_ratio(success_ratio(equal, original), required=required, what=what)
    differences = [f"{cluster}: {d}" for cluster, c in comparisons.items()
                   for d in c.differences]
    judgement.evidence.update({"objects_original": original, "objects_equal": equal,
                               "differences": differences[:_LISTED]})
    if differences and judgement.held:
        # Every original object is back, but the restore added objects of its own.
        return Judgement(Verdict.VIOLATED, f"{what}, but {'; '.join(differences[:3])}",
                         judgement.evidence)
    if not judgement.held and differences:
        return Judgement(judgement.verdict, f"{judgement.reason}: {'; '.join(differences[:3])}",
                         judgement.evidence)
    return judgement


def judge_backup_restore(comparisons: Mapping[str, Comparison],
                         traffic: tuple[int, int] | None,
                         thresholds: EffectiveThresholds) -> Judgement:
    """BACKUP-RESTORE: the restored mesh equals the export, and traffic works again.

    ``comparisons``: per cluster, the original export against the mesh after the
    restore; ``traffic``: (2xx answers, requests) sent after the restore, or None
    when none could be sent.
    """
    required = float(thresholds["min_ratio"])
    if not comparisons:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{GUARANTEE}: no cluster's mesh configuration was exported and restored")
    parts = {"config": judge_restored_config(comparisons, required=required)}
    if traffic is None:
        parts["traffic"] = Judgement(Verdict.NOT_MEASURABLE,
                                     "no probe request was sent after the restore")
    else:
        parts["traffic"] = judge_traffic(traffic[0], traffic[1], required=required,
                                         what="probe requests answered after the restore")
    return combine(GUARANTEE, parts)
