"""The pure parts of meshproof.safety: undo arithmetic, blast radius, lock holders, signals."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshproof.safety import DestructiveRefused, require_all_allowed, require_allowed
from meshproof.safety.lock import Holder, holder_of
from meshproof.safety.marks import (
    CHANGED_BY_ANNOTATION,
    RUN_ID_LABEL,
    apply_merge_patch,
    describe_path,
    inverse_merge_patch,
    semantic_view,
    split_path,
)
from meshproof.safety.records import record_name
from meshproof.safety.signals import interrupts_raise, signals_deferred
from meshproof.target.schema import Target

_keys = st.sampled_from(["a", "b", "spec", "replicas"])
_leaves = st.one_of(st.integers(0, 3), st.sampled_from(["", "x"]), st.booleans(),
                    st.lists(st.integers(0, 2), max_size=2))
_documents = st.recursive(_leaves, lambda inner: st.dictionaries(_keys, inner, max_size=3),
                          max_leaves=5)
_objects = st.dictionaries(_keys, _documents, max_size=3)
# A merge patch: values, removals (None) and nested patches.
_patches = st.recursive(st.one_of(_leaves, st.none()),
                        lambda inner: st.dictionaries(_keys, inner, max_size=3), max_leaves=5)


@given(original=_objects, patch=st.dictionaries(_keys, _patches, max_size=3))
def test_inverse_merge_patch_restores_the_original(original: dict[str, Any],
                                                   patch: dict[str, Any]) -> None:
    changed = apply_merge_patch(original, patch)
    assert apply_merge_patch(changed, inverse_merge_patch(original, patch)) == original


@given(original=_objects, patch=st.dictionaries(_keys, _patches, min_size=1, max_size=3),
       other=st.dictionaries(st.sampled_from(["x", "y"]), _leaves, min_size=1, max_size=2))
def test_inverse_leaves_what_others_changed_meanwhile(original: dict[str, Any],
                                                      patch: dict[str, Any],
                                                      other: dict[str, Any]) -> None:
    changed = {**apply_merge_patch(original, patch), **other}
    restored = apply_merge_patch(changed, inverse_merge_patch(original, patch))
    assert restored == {**original, **other}


def test_merge_patch_follows_rfc_7386() -> None:
    # RFC 7386 section 3's example.
    target = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
              "tags": ["example", "sample"], "content": "This will be unchanged"}
    patch = {"title": "Hello!", "phoneNumber": "+01-123-456-7890",
             "author": {"familyName": None}, "tags": ["example"]}
    assert apply_merge_patch(target, patch) == {
        "title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
        "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"}


def test_semantic_view_ignores_server_fields_and_run_marks() -> None:
    metadata = {"name": "x", "namespace": "n", "labels": {"app": "a"}}
    original: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
                                "data": {"k": "v"}}
    served = {**original, "status": {"phase": "x"},
              "metadata": {**metadata, "uid": "u", "resourceVersion": "9",
                           "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 3,
                           "labels": {"app": "a", RUN_ID_LABEL: "r1"},
                           "annotations": {CHANGED_BY_ANNOTATION: "r1"}}}
    assert semantic_view(served) == original
    assert semantic_view({**served, "data": {"k": "other"}}) != original


def test_paths_split_and_read_as_words() -> None:
    path = "/apis/networking.istio.io/v1/namespaces/sample/virtualservices/helloworld"
    assert split_path(path) == (
        "/apis/networking.istio.io/v1/namespaces/sample/virtualservices", "helloworld")
    assert describe_path(path) == "virtualservices sample/helloworld"
    assert describe_path("/api/v1/namespaces/meshproof-probe-1") == (
        "namespaces meshproof-probe-1")
    with pytest.raises(ValueError, match="not the API path of one object"):
        split_path("deployments/x")


def _target(allowed: dict[str, list[str]]) -> Target:
    cluster = {"prometheus": None, "network": "n1"}
    return Target.model_validate({
        "name": "t", "namespaces": ["sample"], "destructive": {"allowed": allowed},
        "clusters": [{"name": "east", "context": "east", **cluster},
                     {"name": "west", "context": "west", **cluster}]})


def test_blast_radius_allows_only_listed_faults_per_cluster() -> None:
    target = _target({"east": ["eastwest-gateway-loss"]})
    require_allowed(target, "east", "eastwest-gateway-loss")
    with pytest.raises(DestructiveRefused,
                       match=r"'istiod-outage' refused on cluster east .* allows "
                             r"eastwest-gateway-loss there"):
        require_allowed(target, "east", "istiod-outage")
    with pytest.raises(DestructiveRefused, match="allows none there"):
        require_allowed(target, "west", "eastwest-gateway-loss")
    with pytest.raises(DestructiveRefused, match="has no cluster 'south'"):
        require_allowed(target, "south", "eastwest-gateway-loss")


def test_a_plan_with_one_refused_fault_is_refused_whole() -> None:
    target = _target({"east": ["a"], "west": ["a"]})
    require_all_allowed(target, {"east": ["a"], "west": ["a"]})
    with pytest.raises(DestructiveRefused, match="'b' refused on cluster west"):
        require_all_allowed(target, {"east": ["a"], "west": ["a", "b"]})


def test_default_target_allows_nothing() -> None:
    with pytest.raises(DestructiveRefused, match="allows none there"):
        require_allowed(_target({}), "east", "anything")


def _lease(renewed: dt.datetime, *, host: str, pid: int, duration: int = 30) -> dict[str, Any]:
    return {"metadata": {"labels": {RUN_ID_LABEL: "r1"},
                         "annotations": {"meshproof.io/holder-host": host,
                                         "meshproof.io/holder-pid": str(pid)}},
            "spec": {"holderIdentity": f"meshproof run r1 on {host} pid {pid}",
                     "leaseDurationSeconds": duration,
                     "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_holder_is_live_while_it_renews() -> None:
    now = dt.datetime.now(dt.UTC)
    fresh = holder_of(_lease(now - dt.timedelta(seconds=5), host="elsewhere", pid=1))
    stale = holder_of(_lease(now - dt.timedelta(seconds=31), host="elsewhere", pid=1))
    assert isinstance(fresh, Holder) and isinstance(stale, Holder)
    assert fresh.run_id == "r1" and fresh.live(now)
    assert not stale.live(now)
    assert "renewed 31s ago" in stale.describe(now)


def test_lock_holder_on_this_host_is_dead_once_its_process_is() -> None:
    now = dt.datetime.now(dt.UTC)
    here = socket.gethostname()
    alive = holder_of(_lease(now, host=here, pid=os.getpid()))
    dead = holder_of(_lease(now, host=here, pid=_dead_pid()))
    assert alive is not None and alive.live(now)
    assert dead is not None and not dead.live(now)


def test_a_lease_without_holder_names_nobody() -> None:
    assert holder_of({"metadata": {}, "spec": {}}) is None


def test_sigterm_raises_inside_interrupts_raise_and_not_after() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), interrupts_raise():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is previous


def test_deferred_signals_wait_for_the_block_to_finish() -> None:
    finished = False
    with pytest.raises(KeyboardInterrupt, match="after the rollback finished"):
        with signals_deferred() as held:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            finished = True
    assert finished and held == [signal.SIGINT, signal.SIGTERM]


def test_undo_record_names_are_valid_object_names_for_any_run_id() -> None:
    pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    for run_id in ("3f2a9c1d", "After_Recover", "run.1", "--"):
        name = record_name(run_id, 1795702959731361)
        assert re.match(pattern, name) and len(name) <= 253, name
    assert record_name("a", 1) != record_name("a", 2)
