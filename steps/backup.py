"""Steps of the backup-and-restore drill (features/backup.feature).

The drill itself runs through the shared drill steps (steps/drills.py: the
experiment experiments/backup-restore.json, once per cluster as the fault
cluster); this step puts each run's timeline, comparison and verdict into the
scenario's evidence. The verdict was decided against the catalog's thresholds
by ``meshproof.backup.judge_backup_restore``.
"""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import Guarantee
from meshproof.chaos.running import DrillOutcome
from meshproof.run.drills import record_outcome
from meshproof.run.evidence import Evidence


@then("the restored mesh configuration equals the original in every cluster")
def _(drill_outcomes: list[DrillOutcome], guarantee: Guarantee, evidence: Evidence) -> None:
    for outcome in drill_outcomes:
        judged = outcome.judgements[guarantee.id].evidence
        evidence.add("objects restored equal",
                     f"{judged.get('config.objects_equal', '?')} of "
                     f"{judged.get('config.objects_original', '?')}",
                     cluster=outcome.roles.get("fault_cluster"))
        # The judgement's evidence lists the differences object by object.
        record_outcome(evidence, outcome, guarantee.id)
    evidence.conclude()
