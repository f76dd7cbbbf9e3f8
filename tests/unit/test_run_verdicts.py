"""Outcome -> verdict mapping, aggregation, the evidence recorder and the results-file tail."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from meshproof.run.evidence import Evidence, jsonable
from meshproof.run.pytest_plugin import classify
from meshproof.run.results import ResultsTail
from meshproof.run.verdicts import GuaranteeViolated, NotMeasurable, Outcome, aggregate, require
from meshproof.sli.verdict import Judgement, Verdict

H, V, N, INC = Verdict.HELD, Verdict.VIOLATED, Verdict.NOT_MEASURABLE, Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([H, H], H),
        ([H, V], V),
        ([N, V], V),
        ([H, N], N),
        ([H, INC], N),
        ([], N),  # nothing measured is never held
    ],
)
def test_aggregate(verdicts: list[Verdict], expected: Verdict) -> None:
    assert aggregate(verdicts) is expected


def _classify(exc: BaseException) -> tuple[Outcome, str, str]:
    try:
        raise exc
    except BaseException as caught:
        phase = classify(pytest.ExceptionInfo.from_exception(caught))
    return phase.outcome, phase.message, phase.fix


def test_classify_maps_exceptions_to_outcomes() -> None:
    assert classify(None).outcome is Outcome.PASSED
    assert _classify(AssertionError("p95 120 ms > 100 ms")) == (
        Outcome.VIOLATED,
        "p95 120 ms > 100 ms",
        "",
    )
    judged = GuaranteeViolated(Judgement(V, "97% < 99%", {"ok": 97}), cluster="aws-eks")
    assert _classify(judged) == (Outcome.VIOLATED, "97% < 99% [aws-eks]", "")
    assert _classify(NotMeasurable("no series", fix="scrape istiod")) == (
        Outcome.NOT_MEASURABLE,
        "no series",
        "scrape istiod",
    )
    assert _classify(pytest.skip.Exception("plain")) == (Outcome.NOT_MEASURABLE, "plain", "")
    outcome, message, _ = _classify(ConnectionRefusedError("refused\nsecond line"))
    assert outcome is Outcome.ERROR and message == "ConnectionRefusedError: refused"


def test_not_measurable_is_a_skip_with_reason_and_fix() -> None:
    exc = NotMeasurable("no Prometheus", fix="set clusters[].prometheus", cluster="gcp-gke")
    assert isinstance(exc, pytest.skip.Exception)
    assert exc.msg == "no Prometheus [gcp-gke] (fix: set clusters[].prometheus)"


def test_require_raises_what_the_judgement_stands_for() -> None:
    held = Judgement(H, "ok")
    assert require(held) is held
    with pytest.raises(GuaranteeViolated) as violated:
        require(Judgement(V, "too slow", {"p95_ms": 130}), cluster="aws-eks")
    assert violated.value.judgement.evidence == {"p95_ms": 130}
    assert isinstance(violated.value, AssertionError)
    with pytest.raises(NotMeasurable) as inconclusive:
        require(Judgement(INC, "3 requests"))
    assert "lengthen the window" in inconclusive.value.fix
    with pytest.raises(NotMeasurable) as custom:
        require(Judgement(N, "no series"), fix="enable telemetry")
    assert custom.value.fix == "enable telemetry"


def test_evidence_records_per_cluster_and_concludes_on_the_worst() -> None:
    evidence = Evidence(("XC-LATENCY",), cluster=None)
    evidence.add("query", "histogram_quantile(0.95, ...)", cluster="aws-eks")
    evidence.judgement(Judgement(H, "fine", {"share": 0.99}), cluster="aws-eks")
    evidence.judgement(Judgement(N, "no data"), cluster="gcp-gke")
    evidence.judgement(Judgement(V, "too slow", {"share": 0.9}), cluster="gcp-gke")
    data = evidence.to_json()
    assert [i["key"] for i in data["items"]] == ["query", "share", "share"]
    assert [i["cluster"] for i in data["items"]] == ["aws-eks", "aws-eks", "gcp-gke"]
    with pytest.raises(GuaranteeViolated, match=r"too slow \[gcp-gke\]"):
        evidence.conclude()
    only_missing = Evidence(("XC-LATENCY",), cluster="aws-eks")
    only_missing.judgement(Judgement(N, "no data"))
    with pytest.raises(NotMeasurable, match=r"no data \[aws-eks\]"):
        only_missing.conclude()
    Evidence(("XC-LATENCY",)).conclude()  # nothing recorded, nothing to object to


def test_jsonable_makes_plain_json() -> None:
    value = jsonable({"v": H, "nan": math.nan, "t": (1, 2), "s": {3}, 4: b"x"})
    assert json.loads(json.dumps(value)) == {
        "v": "held",
        "nan": "nan",
        "t": [1, 2],
        "s": [3],
        "4": "b'x'",
    }


def test_results_tail_returns_only_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    tail = ResultsTail(path)
    assert tail.poll() == []  # not there yet
    with path.open("w") as stream:
        stream.write('{"event": "a"}\n{"event": "b", "x"')
        stream.flush()
        assert [e["event"] for e in tail.poll()] == ["a"]
        stream.write(": 1}\n")
        stream.flush()
        assert tail.poll() == [{"event": "b", "x": 1}]
        assert tail.poll() == []
