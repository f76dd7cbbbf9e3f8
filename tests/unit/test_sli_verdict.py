"""Verdict and Judgement: the small, stable types every other area imports."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest

from meshproof.sli import Judgement, Verdict


def test_verdict_values_are_stable_strings() -> None:
    assert [v.value for v in Verdict] == ["held", "violated", "inconclusive", "not_measurable"]
    assert str(Verdict.NOT_MEASURABLE) == "not_measurable"
    assert Verdict("held") is Verdict.HELD


def test_judgement_is_frozen_and_serialisable() -> None:
    judgement = Judgement(Verdict.HELD, "all 10 requests went to v2", {"total": 10})
    assert judgement.held and not Judgement(Verdict.INCONCLUSIVE, "few").held
    assert json.loads(json.dumps({"verdict": judgement.verdict, **judgement.evidence})) == {
        "verdict": "held",
        "total": 10,
    }
    with pytest.raises(FrozenInstanceError):
        judgement.reason = "changed"  # type: ignore[misc]
