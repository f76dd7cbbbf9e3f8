"""drill_safety's pure parts: how many activities a drill announces, where it is killed,
what counts as left over."""

from __future__ import annotations

import json
import random
from pathlib import Path

from bench.drill_safety import (
    CHANGE_SPREAD_S,
    EXPERIMENTS,
    KILL_JITTER_S,
    Leftovers,
    Trial,
    _figure,
    activities,
    kill_point,
    state_differences,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_drill_experiment_exists_and_announces_activities() -> None:
    for name in EXPERIMENTS:
        doc = json.loads((ROOT / "experiments" / f"{name}.json").read_text())
        probes = len(doc["steady-state-hypothesis"]["probes"])
        assert activities(doc) == 2 * probes + len(doc["method"]) + len(doc.get("rollbacks", []))
        assert activities(doc) > 2 * probes  # a method to kill inside


def test_activities_of_an_empty_experiment_is_zero() -> None:
    assert activities({}) == 0


def test_kill_points_cover_every_activity_from_the_start_to_the_last() -> None:
    rng = random.Random(5)
    points = [kill_point(rng, 6, on_change=False) for _ in range(500)]
    assert {p.after for p in points} == set(range(6))
    assert all(0.0 <= p.delay_s <= KILL_JITTER_S and not p.on_change for p in points)


def test_every_other_kill_comes_after_the_first_recorded_change() -> None:
    rng = random.Random(6)
    points = [kill_point(rng, 6, on_change=True) for _ in range(500)]
    assert all(p.on_change and 0.0 <= p.delay_s <= CHANGE_SPREAD_S for p in points)
    assert max(p.delay_s for p in points) > CHANGE_SPREAD_S / 2
    assert "after its first recorded change" in points[0].describe()


def test_state_differences_name_gone_new_and_changed_objects() -> None:
    before = {"aws-eks /apis/apps/v1/namespaces/istio-system/deployments/istiod": 1,
              "aws-eks /apis/networking.istio.io/v1/namespaces/sample/destinationrules/h":
                  {"spec": {"host": "h"}},
              "gcp-gke /apis/apps/v1/namespaces/sample/deployments/helloworld-v1": 1}
    after = {"aws-eks /apis/apps/v1/namespaces/istio-system/deployments/istiod": 0,
             "gcp-gke /apis/apps/v1/namespaces/sample/deployments/helloworld-v1": 1,
             "gcp-gke /api/v1/namespaces/meshproof-probe-x": {"x": 1}}
    assert state_differences(before, after) == [
        "aws-eks /apis/apps/v1/namespaces/istio-system/deployments/istiod differs "
        "(replicas 1 -> 0)",
        "aws-eks /apis/networking.istio.io/v1/namespaces/sample/destinationrules/h is gone",
        "gcp-gke /api/v1/namespaces/meshproof-probe-x is new",
    ]
    assert state_differences(before, dict(before)) == []


def test_leftovers_add_up_by_kind() -> None:
    one = Leftovers(records=["aws-eks meshproof-undo-r-1"], labelled=["aws-eks ns"])
    two = Leftovers(leases=["gcp-gke lease"], changed=["x differs"])
    one.add(two)
    assert one.total() == 4
    assert one.describe() == ("1 undo records, 1 run locks, 1 run-labelled objects, "
                              "0 objects marked changed, 1 objects differing from before")
    assert Leftovers().total() == 0


def _trial(killed: str, found: Leftovers, remaining: Leftovers, code: int = 0) -> Trial:
    return Trial("r", "istiod-outage", "aws-eks", killed, found, remaining, 1, code, 2.0)


def test_the_figure_is_met_only_with_nothing_left_and_every_recover_clean() -> None:
    change = Leftovers(records=["aws-eks undo"], changed=["istiod differs"])
    clean = [_trial("3.0 s in", change, Leftovers()), _trial("1.0 s in", Leftovers(),
                                                              Leftovers())]
    figure = _figure(clean, reruns=2)
    assert figure.met
    assert figure.text.startswith("2 of 2 drills SIGKILLed at random moments (2 runs ended "
                                  "before their moment and were run again; 1 kills with a "
                                  "change in place, 1 left something")
    assert "after `meshproof recover` 0 remain" in figure.text
    assert not _figure([*clean, _trial("2 s in", change, change)], reruns=0).met
    assert not _figure([*clean, _trial("2 s in", change, Leftovers(), code=2)], reruns=0).met
    ended = _figure([_trial("9 s in (it had ended: exit 0)", Leftovers(), Leftovers())], 3)
    assert ended.text.startswith("0 of 1 drills SIGKILLed") and not ended.met
