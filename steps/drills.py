"""Steps of the drill features (features/failover.feature, features/resilience.feature).

Each scenario runs the experiments that prove its guarantee (experiments/*.json, found
by the guarantee id in their meshproof extension) through Chaos Toolkit, once per
cluster as the fault cluster, and judges the guarantee from what they measured.
"""

from __future__ import annotations

import pytest
from pytest_bdd import given, then, when

from meshproof.catalog import Guarantee
from meshproof.chaos.experiments import DrillExperiment, default_experiments_dir, role_assignments
from meshproof.chaos.running import DrillOutcome, require_drills_allowed, run_drill
from meshproof.run.drills import record_outcome
from meshproof.run.evidence import Evidence
from meshproof.run.verdicts import NotMeasurable
from meshproof.target import Target


@given("the target allows the drill experiments of the guarantee",
       target_fixture="drill_experiments")
def _(target: Target, guarantee: Guarantee,
      pytestconfig: pytest.Config) -> list[DrillExperiment]:
    directory = default_experiments_dir(pytestconfig.rootpath)
    experiments = require_drills_allowed(target, [guarantee.id], directory)
    if not experiments:
        raise NotMeasurable(f"no experiment in {directory} proves {guarantee.id}")
    return experiments


@when("the guarantee's drill runs with each cluster as the fault cluster",
      target_fixture="drill_outcomes")
def _(target: Target, drill_experiments: list[DrillExperiment],
      run_id: str) -> list[DrillOutcome]:
    return [run_drill(target, experiment, roles, run_id)
            for experiment in drill_experiments
            for roles in role_assignments(target.cluster_names)]


@then("the guarantee held in every drill")
def _(drill_outcomes: list[DrillOutcome], guarantee: Guarantee, evidence: Evidence) -> None:
    for outcome in drill_outcomes:
        record_outcome(evidence, outcome, guarantee.id)
    evidence.conclude()
