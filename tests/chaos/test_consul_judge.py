"""DISCOVERY-FAILOVER: catalog readings judged against the catalog's thresholds (pure logic)."""

from __future__ import annotations

from meshproof.catalog import EffectiveThresholds, load_catalog
from meshproof.chaos.consul_judge import (
    CatalogReading,
    catalog_problems,
    judge_discovery_failover,
)
from meshproof.sli.verdict import Verdict

KUBE = {("sample", "helloworld"): {"127.1.0.5:5000", "127.1.0.6:5000"},
        ("sample", "unused"): set()}
SYNCED = {"helloworld-sample": {"127.1.0.5:5000", "127.1.0.6:5000"}}


def thresholds() -> EffectiveThresholds:
    return load_catalog().effective_thresholds("DISCOVERY-FAILOVER", {})


def readings(*, wrong: int = 0, unanswered: int = 3, after: int = 4) -> list[CatalogReading]:
    out = [CatalogReading(at=float(i), answered=False) for i in range(unanswered)]
    out += [CatalogReading(at=10.0 + i, answered=True, problems=("helloworld-sample: stale",))
            for i in range(wrong)]
    out += [CatalogReading(at=20.0 + i, answered=True, after_leader=True) for i in range(after)]
    return out


def test_the_catalog_rule_is_discoverys() -> None:
    assert catalog_problems(SYNCED, KUBE) == []
    stale = {"helloworld-sample": {"127.1.0.5:5000", "127.1.0.9:5000"}}
    assert catalog_problems(stale, KUBE) == [
        "helloworld-sample: Consul ['127.1.0.5:5000', '127.1.0.9:5000'] ≠ Kubernetes "
        "['127.1.0.5:5000', '127.1.0.6:5000']"]
    assert catalog_problems({}, KUBE)[0].startswith("helloworld-sample: Consul []")
    assert catalog_problems(None, KUBE) == ["Consul has no catalog sync node"]


def test_unanswered_reads_while_leaderless_are_not_wrong_answers() -> None:
    judgement = judge_discovery_failover({"leader_s": 4.2, "leader_waited_s": 9.0,
                                          "readings": readings()}, thresholds())
    assert judgement.verdict is Verdict.HELD, judgement.reason
    assert judgement.evidence["catalog.answered"] == 4
    assert judgement.evidence["leader.leader_s"] == 4.2


def test_one_wrong_answer_violates_with_what_disagreed() -> None:
    judgement = judge_discovery_failover({"leader_s": 4.2, "leader_waited_s": 9.0,
                                          "readings": readings(wrong=1)}, thresholds())
    assert judgement.verdict is Verdict.VIOLATED
    assert "4 of 5" in judgement.reason and "helloworld-sample: stale" in judgement.reason


def test_no_new_leader_violates() -> None:
    judgement = judge_discovery_failover({"leader_s": None, "leader_waited_s": 120.0,
                                          "readings": readings(after=0)}, thresholds())
    assert judgement.verdict is Verdict.VIOLATED
    assert "no new Consul leader within the 120.0 s waited" in judgement.reason


def test_a_slow_leader_violates() -> None:
    limit = float(thresholds()["max_leader_s"])
    judgement = judge_discovery_failover({"leader_s": limit + 1, "leader_waited_s": limit + 1,
                                          "readings": readings()}, thresholds())
    assert judgement.verdict is Verdict.VIOLATED and "over the limit" in judgement.reason


def test_a_catalog_never_served_again_violates() -> None:
    silent = judge_discovery_failover({"leader_s": 3.0, "leader_waited_s": 9.0,
                                       "readings": readings(after=0)}, thresholds())
    assert silent.verdict is Verdict.VIOLATED
    assert "Consul answered none of 3" in silent.reason
    before_only = [CatalogReading(at=1.0, answered=True)]
    judgement = judge_discovery_failover({"leader_s": 3.0, "leader_waited_s": 9.0,
                                          "readings": before_only}, thresholds())
    assert judgement.verdict is Verdict.VIOLATED
    assert "not served once the new leader was elected" in judgement.reason
