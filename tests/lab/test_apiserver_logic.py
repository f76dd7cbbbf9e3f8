"""Pure logic of the lab API server: strategic merge / merge / json patch, selectors,
validation, and the store's own semantics (no HTTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from meshproof.lab.kube.apierrors import BadRequest, Expired, UnsupportedMediaType, status_for
from meshproof.lab.kube.interfaces import Conflict, Invalid, NotFound, WatchEvent
from meshproof.lab.kube.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
    strategic_merge_patch,
)
from meshproof.lab.kube.printercolumns import evaluate
from meshproof.lab.kube.selectors import parse_field_selector, parse_label_selector
from meshproof.lab.kube.store import MemoryStore

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


_POD = {"metadata": {"name": "p"}, "spec": {"containers": [
    {"name": "app", "image": "a:1", "env": [{"name": "X", "value": "1"}],
     "ports": [{"containerPort": 80, "name": "http"}]},
    {"name": "sidecar", "image": "s:1"}],
    "volumes": [{"name": "v1"}, {"name": "v2"}], "tolerations": [{"key": "a"}]}}


def test_strategic_merge_merges_lists_by_their_keys() -> None:
    out = strategic_merge_patch(_POD, {"spec": {
        "containers": [{"name": "app", "image": "a:2", "env": [{"name": "Y", "value": "2"}],
                        "ports": [{"containerPort": 81}]}],
        "tolerations": [{"key": "b"}]}})
    app = out["spec"]["containers"][0]
    assert app["image"] == "a:2"
    assert app["env"] == [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]
    assert [p["containerPort"] for p in app["ports"]] == [80, 81]
    assert out["spec"]["containers"][1] == {"name": "sidecar", "image": "s:1"}
    assert out["spec"]["tolerations"] == [{"key": "b"}]  # no merge key: replaced
    assert _POD["spec"]["containers"][0]["image"] == "a:1"  # input untouched


def test_strategic_merge_directives() -> None:
    out = strategic_merge_patch(_POD, {"spec": {
        "containers": [{"name": "sidecar", "$patch": "delete"}],
        "volumes": [{"$patch": "replace"}, {"name": "only"}],
        "$setElementOrder/containers": [{"name": "app"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["app"]
    assert out["spec"]["volumes"] == [{"name": "only"}]

    out = strategic_merge_patch({"metadata": {"labels": {"a": "1", "b": "2"}}},
                                {"metadata": {"labels": {"a": None, "c": "3"}}})
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}

    strategy = {"spec": {"strategy": {"type": "RollingUpdate",
                                      "rollingUpdate": {"maxSurge": 1}}}}
    out = strategic_merge_patch(strategy, {"spec": {"strategy": {
        "$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}

    out = strategic_merge_patch({"metadata": {"finalizers": ["a", "b"]}},
                                {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out["metadata"]["finalizers"] == ["b"]
    out = strategic_merge_patch({"metadata": {"finalizers": ["a"]}},
                                {"metadata": {"finalizers": ["b"]}})
    assert out["metadata"]["finalizers"] == ["a", "b"]

    out = strategic_merge_patch({"spec": {"template": {"a": 1, "b": 2}}},
                                {"spec": {"template": {"$patch": "replace", "c": 3}}})
    assert out["spec"]["template"] == {"c": 3}


def test_service_ports_merge_on_port() -> None:
    svc = {"spec": {"ports": [{"name": "http", "port": 80}, {"name": "tls", "port": 443}]}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 443, "name": "https"}]}})
    assert out["spec"]["ports"] == [{"name": "http", "port": 80},
                                    {"name": "https", "port": 443}]


def test_merge_and_json_patch_and_media_types() -> None:
    out = apply_patch(_POD, MERGE_PATCH, {"spec": {"containers": [{"name": "only"}]}},
                      builtin=True)
    assert out["spec"]["containers"] == [{"name": "only"}]  # RFC 7386: lists replaced
    out = apply_patch(_POD, JSON_PATCH, [{"op": "add", "path": "/metadata/labels",
                                          "value": {"a": "b"}}], builtin=True)
    assert out["metadata"]["labels"] == {"a": "b"}
    with pytest.raises(Invalid):
        apply_patch(_POD, JSON_PATCH, [{"op": "test", "path": "/metadata/name",
                                        "value": "q"}], builtin=True)
    with pytest.raises(UnsupportedMediaType):
        apply_patch(_POD, STRATEGIC_MERGE_PATCH, {}, builtin=False)
    with pytest.raises(UnsupportedMediaType):
        apply_patch(_POD, "text/plain", {}, builtin=True)


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("", {}, True),
    ("a=1", {"a": "1"}, True),
    ("a==1,b!=2", {"a": "1", "b": "3"}, True),
    ("a!=1", {}, True),
    ("a in (1, 2),c", {"a": "2", "c": ""}, True),
    ("a notin (1,2)", {"a": "1"}, False),
    ("a notin (1,2)", {}, True),
    ("!a", {"a": "x"}, False),
    ("app.kubernetes.io/name=x", {"app.kubernetes.io/name": "x"}, True),
])
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


def test_field_selectors_and_bad_input() -> None:
    event = {"metadata": {"name": "e", "namespace": "n"}, "type": "Warning",
             "involvedObject": {"kind": "Pod", "name": "p"}}
    assert parse_field_selector("involvedObject.kind=Pod,type=Warning").matches(event)
    assert not parse_field_selector("metadata.namespace!=n").matches(event)
    with pytest.raises(BadRequest):
        parse_field_selector("justaword")
    with pytest.raises(BadRequest):
        parse_label_selector("a in x")


def test_status_objects() -> None:
    status = status_for(Expired("too old resource version: 1 (5)"))
    assert (status["code"], status["reason"], status["status"]) == (410, "Expired", "Failure")
    assert status_for(NotFound('pods "x" not found'))["code"] == 404


async def _drain(events: Any, count: int) -> list[WatchEvent]:
    out = []
    async for event in events:
        out.append(event)
        if len(out) == count:
            break
    return out


def test_store_watch_resume_and_expiry() -> None:
    async def scenario() -> None:
        store = MemoryStore("aws-eks", history=4)
        cms = store.kind_for("v1", "ConfigMap")
        _, start = await store.list(cms)
        await store.create(cms, {"metadata": {"name": "a"}}, namespace="default")
        await store.mutate(cms, "a", lambda o: o.update(data={"k": "v"}), namespace="default")
        events = await _drain(store.watch(cms, resource_version=start), 2)
        assert [e.type for e in events] == ["ADDED", "MODIFIED"]
        for i in range(5):
            await store.create(cms, {"metadata": {"name": f"n{i}"}}, namespace="default")
        [error] = await _drain(store.watch(cms, resource_version=start), 1)
        assert error.type == "ERROR" and error.object["code"] == 410
        await store.close()

    run(scenario())


def test_store_generation_conflict_and_status_subresource() -> None:
    async def scenario() -> None:
        store = MemoryStore("aws-eks")
        deps = store.kind_for("apps/v1", "Deployment")
        dep = await store.create(deps, {"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]}}}},
            namespace="default")
        labelled = await store.mutate(deps, "d", lambda o: o["metadata"].update(labels={"x": "y"}),
                                      namespace="default")
        assert labelled["metadata"]["generation"] == 1  # metadata is not spec
        scaled = await store.mutate(deps, "d", lambda o: o["spec"].update(replicas=4),
                                    namespace="default")
        assert scaled["metadata"]["generation"] == 2
        with pytest.raises(Conflict):
            await store.update(deps, dep)  # dep carries a stale resourceVersion
        status = await store.mutate(deps, "d", lambda o: o.update(status={"replicas": 4}),
                                    namespace="default", subresource="status")
        assert status["status"] == {"replicas": 4} and status["metadata"]["generation"] == 2
        unchanged = await store.mutate(deps, "d", lambda o: None, namespace="default")
        assert unchanged["metadata"]["resourceVersion"] == status["metadata"]["resourceVersion"]
        await store.close()

    run(scenario())


def test_store_finalizers_and_orphaning() -> None:
    async def scenario() -> None:
        store = MemoryStore("aws-eks")
        cms = store.kind_for("v1", "ConfigMap")
        owner = await store.create(cms, {"metadata": {"name": "owner",
                                                      "finalizers": ["lab/hold"]}},
                                   namespace="default")
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
               "uid": owner["metadata"]["uid"]}
        await store.create(cms, {"metadata": {"name": "dep", "ownerReferences": [ref]}},
                           namespace="default")
        held = await store.delete(cms, "owner", namespace="default")
        assert held["metadata"]["deletionTimestamp"]
        await store.mutate(cms, "owner", lambda o: o["metadata"].update(finalizers=[]),
                           namespace="default")
        with pytest.raises(NotFound):
            await store.get(cms, "owner", namespace="default")
        with pytest.raises(NotFound):
            await store.get(cms, "dep", namespace="default")

        owner = await store.create(cms, {"metadata": {"name": "owner2"}}, namespace="default")
        ref["uid"], ref["name"] = owner["metadata"]["uid"], "owner2"
        await store.create(cms, {"metadata": {"name": "kept", "ownerReferences": [ref]}},
                           namespace="default")
        await store.delete(cms, "owner2", namespace="default", propagation_policy="Orphan")
        kept = await store.get(cms, "kept", namespace="default")
        assert "ownerReferences" not in kept["metadata"]
        await store.close()

    run(scenario())


def test_store_refuses_bad_names_and_missing_namespaces() -> None:
    async def scenario() -> None:
        store = MemoryStore("gcp-gke")
        svcs = store.kind_for("v1", "Service")
        with pytest.raises(Invalid) as err:
            await store.create(svcs, {"metadata": {"name": "1svc"}, "spec": {"ports": [
                {"port": 80}]}}, namespace="default")
        assert "DNS-1035" in str(err.value)
        with pytest.raises(NotFound) as missing:
            await store.create(svcs, {"metadata": {"name": "s"}}, namespace="nowhere")
        assert str(missing.value) == 'namespaces "nowhere" not found'
        with pytest.raises(NotFound):
            store.kind_for("v1", "Gizmo")
        await store.close()

    run(scenario())


def test_printer_column_paths() -> None:
    cert = {"spec": {"secretName": "tls", "hosts": ["a", "b"]},
            "status": {"conditions": [{"type": "Issuing", "status": "False"},
                                      {"type": "Ready", "status": "True"}]}}
    assert evaluate(cert, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert evaluate(cert, ".spec.hosts[1]") == ["b"]
    assert evaluate(cert, ".spec.hosts[*]") == ["a", "b"]
    assert evaluate(cert, ".spec.missing") == []


def _pb(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return bytes([number << 3]) + bytes([payload])  # small varints only
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_bodies_decode_to_json_shapes() -> None:
    from meshproof.lab.kube.protobuf import decode_object

    label = _pb(1, b"team") + _pb(2, b"mesh")
    meta = _pb(1, b"gen") + _pb(11, label) + _pb(3, b"")  # Go writes empty strings too
    port = _pb(3, 80) + _pb(4, _pb(1, 1) + _pb(3, b"http"))  # targetPort as a string
    spec = _pb(1, port) + _pb(4, b"ClusterIP")
    raw = _pb(1, meta) + _pb(2, spec)
    body = b"k8s\x00" + _pb(1, _pb(1, b"v1") + _pb(2, b"Service")) + _pb(2, raw)
    assert decode_object(body) == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "gen", "labels": {"team": "mesh"}},
        "spec": {"ports": [{"port": 80, "targetPort": "http"}], "type": "ClusterIP"}}
    with pytest.raises(UnsupportedMediaType):
        decode_object(b"k8s\x00" + _pb(1, _pb(1, b"v1") + _pb(2, b"Gizmo")))


def test_secret_string_data_is_folded_into_data() -> None:
    async def scenario() -> None:
        store = MemoryStore("aws-eks")
        secrets = store.kind_for("v1", "Secret")
        made = await store.create(secrets, {"metadata": {"name": "s"},
                                            "data": {"a": "eA=="},
                                            "stringData": {"b": "y"}}, namespace="default")
        assert made["data"] == {"a": "eA==", "b": "eQ=="} and "stringData" not in made
        assert made["type"] == "Opaque"
        await store.close()

    run(scenario())
