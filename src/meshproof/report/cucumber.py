"""Cucumber JSON: pytest-bdd's own ``--cucumberjson`` output, normalized.

pytest-bdd reports a scenario that ended in a skip (``NotMeasurable``) with all
its steps "passed", and every step after a failure as "failed". Cucumber's
convention, which report viewers follow, is: the step that ended the scenario
is "failed" or "skipped", the ones after it "skipped". The runner knows which
step was running when a scenario ended, so it fixes the statuses and attaches
the reason to that step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshproof.run.results import ScenarioResult
from meshproof.run.verdicts import Outcome

__all__ = ["normalize_cucumber"]


def _fix_steps(steps: list[dict[str, Any]], result: ScenarioResult) -> None:
    if result.outcome is Outcome.PASSED or not steps:
        return
    lines = [step.get("line") for step in steps]
    if result.interrupted_line in lines:
        stop = lines.index(result.interrupted_line)
    else:
        failed = [
            i for i, step in enumerate(steps) if step.get("result", {}).get("status") == "failed"
        ]
        # No step was running when it ended (a recorded judgement decided): blame the last one.
        stop = failed[0] if failed else len(steps) - 1
    message = result.message + (f" (fix: {result.fix})" if result.fix else "")
    ended = steps[stop]["result"]
    ended["status"] = "skipped" if result.outcome is Outcome.NOT_MEASURABLE else "failed"
    ended["error_message"] = ended.get("error_message") or message
    for step in steps[stop + 1 :]:
        step["result"]["status"] = "skipped"
        step["result"].pop("error_message", None)


def normalize_cucumber(
    features: Sequence[dict[str, Any]], scenarios: Sequence[ScenarioResult]
) -> list[dict[str, Any]]:
    """pytest-bdd's Cucumber JSON with step statuses fixed from the runner's results."""
    by_key = {(s.feature_uri, s.item): s for s in scenarios}
    out = []
    for feature in features:
        feature = dict(feature)
        elements = []
        for element in feature.get("elements", []):
            element = {
                **element,
                "steps": [
                    dict(step, result=dict(step.get("result", {})))
                    for step in element.get("steps", [])
                ],
            }
            result = by_key.get((str(feature.get("uri")), str(element.get("id"))))
            if result is not None:
                _fix_steps(element["steps"], result)
            elements.append(element)
        feature["elements"] = elements
        out.append(feature)
    return out
