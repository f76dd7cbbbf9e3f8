"""CERT-ROTATION's verdict from measured numbers against the catalog's thresholds (pure logic)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meshproof.catalog import EffectiveThresholds, load_catalog
from meshproof.chaos.rotation_judge import (
    issued_after,
    judge_certificate_rotation,
    parse_time,
)
from meshproof.sli.verdict import Verdict

START = parse_time("2026-11-26T18:00:00.700Z") or 0.0
ROOT = ["ab" * 32]
FOREIGN = ["cd" * 32]


def thresholds() -> EffectiveThresholds:
    return load_catalog().effective_thresholds("CERT-ROTATION", {})


def healthy() -> dict[str, Any]:
    return {
        "start": START,
        "handshake_errors": {"aws-eks": 0.0, "gcp-gke": 0.0},
        "handshakes": {"aws-eks": 240.0, "gcp-gke": 12.0},
        "renewal": {"certificate": "istio-system/tls-cert", "renew_s": 1.2, "waited_s": 1.2,
                    "revision_before": 1, "revision": 2,
                    "not_before": "2026-11-26T18:00:00Z", "failure": None},
        "rotation": {"workload": "sample/app=helloworld", "pods": 2, "rotated": 2, "stale": []},
        "bundles": [{"moment": m, "cluster": c, "roots": ROOT}
                    for m in ("before", "after") for c in ("aws-eks", "gcp-gke")],
    }


def test_a_clean_rotation_holds() -> None:
    judgement = judge_certificate_rotation(healthy(), thresholds())
    assert judgement.verdict is Verdict.HELD, judgement.reason
    assert judgement.evidence["trust.distinct"] == 1
    assert judgement.evidence["renewal.renew_s"] == 1.2


def _changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    measured = copy.deepcopy(healthy())
    target = measured
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return measured


@pytest.mark.parametrize(("path", "value", "words"), [
    (("handshake_errors", "gcp-gke"), 3.0, "3 mTLS handshakes failed"),
    (("renewal", "renew_s"), None, "no renewal of istio-system/tls-cert"),
    (("renewal", "failure"), "signing CA key is unusable", "signing CA key is unusable"),
    (("renewal", "renew_s"), 61.0, "over the limit of 60 s"),
    (("renewal", "not_before"), "2026-11-26T17:59:59Z", "before the fault began"),
    (("rotation", "rotated"), 1, "1 of 2"),
    (("bundles", 3, "roots"), FOREIGN, "2 different trust bundles"),
    (("bundles", 1, "roots"), [], "no trust bundle in gcp-gke (before)"),
])
def test_any_broken_part_violates(path: tuple[Any, ...], value: Any, words: str) -> None:
    measured = _changed(path, value)
    if path == ("renewal", "failure"):
        measured["renewal"]["renew_s"] = None
    judgement = judge_certificate_rotation(measured, thresholds())
    assert judgement.verdict is Verdict.VIOLATED
    assert words in judgement.reason, judgement.reason


@pytest.mark.parametrize(("path", "value", "words"), [
    (("handshake_errors", "aws-eks"), None, "no envoy_listener_ssl_* series on aws-eks"),
    (("handshakes",), {"aws-eks": 0.0, "gcp-gke": 0.0}, "no mTLS handshake"),
    (("rotation",), {}, "nothing was counted"),
])
def test_what_was_not_measured_is_never_held(path: tuple[str, ...], value: Any,
                                             words: str) -> None:
    judgement = judge_certificate_rotation(_changed(path, value), thresholds())
    assert judgement.verdict is Verdict.NOT_MEASURABLE
    assert words in judgement.reason, judgement.reason


def test_bundles_read_only_before_are_not_measurable() -> None:
    measured = healthy()
    measured["bundles"] = [b for b in measured["bundles"] if b["moment"] == "before"]
    judgement = judge_certificate_rotation(measured, thresholds())
    assert judgement.verdict is Verdict.NOT_MEASURABLE


def test_a_certificate_is_new_by_valid_from_else_by_a_later_expiry() -> None:
    assert issued_after(START - 0.5, None, start=START, expiries_before=[])  # whole seconds
    assert not issued_after(START - 2, START + 86400, start=START, expiries_before=[])
    assert issued_after(None, START + 86400, start=START, expiries_before=[START + 3600])
    assert not issued_after(None, START + 3600, start=START, expiries_before=[START + 3600])
    assert not issued_after(None, START + 86400, start=START, expiries_before=[])
