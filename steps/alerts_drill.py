"""Steps of the ALERTS drill (features/alerts.feature): every runbook alert, from all drills.

Each experiment judges the alerts it applied faults for; this step judges ALERTS over
every alert of the catalog from all the drills' measurements, so an alert no
experiment could fire on this target is not measurable, never held.
"""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import Catalog, EffectiveThresholds
from meshproof.chaos.alerts import judge_alerts_fired, measurements_of
from meshproof.chaos.running import DrillOutcome
from meshproof.run.drills import record_outcome
from meshproof.run.evidence import Evidence


@then("every runbook alert fired under its fault in the drills")
def _(drill_outcomes: list[DrillOutcome], catalog: Catalog,
      thresholds: EffectiveThresholds, evidence: Evidence) -> None:
    measured = []
    for outcome in drill_outcomes:
        record_outcome(evidence, outcome, "ALERTS")
        measured.extend(measurements_of(outcome.judgements["ALERTS"].evidence))
    evidence.judgement(judge_alerts_fired(
        catalog.alerts, measured, min_fired_ratio=float(thresholds["min_fired_ratio"]),
        max_fire_s=float(thresholds["max_fire_s"])))
    evidence.conclude()
