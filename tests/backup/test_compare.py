"""The semantic comparison of two mesh exports (pure)."""

from __future__ import annotations

import copy
from typing import Any

from meshproof.backup import GroupKind, compare_objects, mesh_view
from meshproof.backup.compare import ObjectKey
from meshproof.safety import CHANGED_BY_ANNOTATION, RUN_ID_LABEL


def _rule(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "helloworld", "namespace": "sample",
                     "labels": {"app": "helloworld"}},
        "spec": {"host": "helloworld.sample.svc.cluster.local",
                 "trafficPolicy": {"outlierDetection": {"consecutive5xxErrors": 5}}, **spec},
    }


def _served(obj: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """``obj`` as the API server hands it back: server fields, status, marks."""
    out = copy.deepcopy(obj)
    out["metadata"].update({
        "uid": "0b5a", "resourceVersion": "812", "generation": 3,
        "creationTimestamp": "2026-11-26T10:00:00Z",
        "managedFields": [{"manager": "kubectl", "operation": "Update"}], **meta})
    out["metadata"]["labels"] = {**out["metadata"]["labels"], RUN_ID_LABEL: "run1"}
    out["metadata"]["annotations"] = {
        CHANGED_BY_ANNOTATION: "run1",
        "kubectl.kubernetes.io/last-applied-configuration": '{"spec": {}}'}
    out["status"] = {"conditions": [{"type": "Ready"}]}
    return out


def test_server_set_fields_marks_and_version_are_ignored() -> None:
    original = _rule()
    restored = _served(original)
    restored["apiVersion"] = "networking.istio.io/v1beta1"
    comparison = compare_objects([original], [restored])
    assert comparison.identical and comparison.equal == comparison.original == 1
    assert comparison.summary() == "all 1 objects equal"
    assert mesh_view(restored) == mesh_view(original)


def test_a_changed_field_is_named_with_both_values() -> None:
    restored = _rule(trafficPolicy={"outlierDetection": {"consecutive5xxErrors": 50}})
    comparison = compare_objects([_rule()], [restored])
    assert comparison.equal == 0 and len(comparison.differences) == 1
    difference = comparison.differences[0]
    assert difference.change == "changed"
    assert [str(f) for f in difference.fields] == [
        "spec.trafficPolicy.outlierDetection.consecutive5xxErrors: 5 → 50"]
    assert str(difference).startswith("DestinationRule sample/helloworld differs: spec.")


def test_labels_and_user_annotations_count() -> None:
    restored = _rule()
    restored["metadata"]["labels"] = {}
    restored["metadata"]["annotations"] = {"team": "mesh"}
    fields = {f.path for f in compare_objects([_rule()], [restored]).differences[0].fields}
    assert fields == {"metadata.labels", "metadata.annotations"}


def test_missing_and_unexpected_objects_are_reported_by_key() -> None:
    policy = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
              "metadata": {"name": "default", "namespace": "production"},
              "spec": {"mtls": {"mode": "STRICT"}}}
    other = _rule()
    other["metadata"]["name"] = "extra"
    comparison = compare_objects([_rule(), policy], [_rule(), other])
    assert comparison.original == 2 and comparison.equal == 1
    assert [(d.key, d.change) for d in comparison.differences] == [
        (ObjectKey(GroupKind("networking.istio.io", "DestinationRule"), "sample", "extra"),
         "unexpected"),
        (ObjectKey(GroupKind("security.istio.io", "PeerAuthentication"), "production",
                   "default"), "missing"),
    ]
    assert [str(d) for d in comparison.missing] == [
        "PeerAuthentication production/default is missing"]
    assert comparison.summary().startswith("1 of 2 objects equal: ")


def test_same_name_in_another_group_or_namespace_is_another_object() -> None:
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "DestinationRule",
               "metadata": {"name": "helloworld", "namespace": "sample"}}
    moved = _rule()
    moved["metadata"]["namespace"] = "production"
    comparison = compare_objects([_rule()], [gateway, moved])
    assert {d.change for d in comparison.differences} == {"missing", "unexpected"}
    assert comparison.equal == 0


def test_list_order_and_type_changes_count() -> None:
    original = _rule(subsets=[{"name": "v1"}, {"name": "v2"}])
    reordered = _rule(subsets=[{"name": "v2"}, {"name": "v1"}])
    shorter = _rule(subsets=[{"name": "v1"}])
    typed = _rule(subsets=[{"name": "v1"}, {"name": "v2"}], exportTo="1")
    assert not compare_objects([original], [reordered]).identical
    assert [f.path for f in compare_objects([original], [shorter]).differences[0].fields] == [
        "spec.subsets"]
    assert [str(f) for f in compare_objects([original], [typed]).differences[0].fields] == [
        "spec.exportTo: (absent) → '1'"]
    assert not compare_objects([_rule(exportTo=1)], [_rule(exportTo=True)]).identical


def test_nothing_compared_with_nothing() -> None:
    comparison = compare_objects([], [])
    assert comparison.identical and comparison.original == 0
