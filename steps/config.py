"""Steps of features/config.feature."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import EffectiveThresholds
from meshproof.checks.config import judge_config
from meshproof.connections import Connections
from meshproof.run.evidence import Evidence
from meshproof.target import Target


@then("analysing the live configuration of every cluster finds no errors")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    evidence.judgement(judge_config(connections.apis, list(target.namespaces),
                                    max_errors=int(thresholds["max_errors"])))
    evidence.conclude()
