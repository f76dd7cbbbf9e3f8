"""Lists in chunks from the lab API server: ``limit`` and ``continue`` through the official
client and kubectl's ``--chunk-size``, and the 400/410 answers for bad and stale tokens."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.support.kube_apiserver import RunningApiServer, running_apiserver

pytestmark = pytest.mark.lab

NAMES = [f"cm-{i}" for i in range(7)]
HISTORY = 20


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("paging"), history=HISTORY) as running:
        yield running


@pytest.fixture(scope="module")
def core(apiserver: RunningApiServer) -> Iterator[client.CoreV1Api]:
    api_client = config.new_client_from_config(str(apiserver.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()


@pytest.fixture()
def ns(core: client.CoreV1Api, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-").lower()[:50].strip("-")
    core.create_namespace({"metadata": {"name": name}})
    for cm in NAMES:
        labels = {"even": "yes"} if int(cm.split("-")[1]) % 2 == 0 else {}
        core.create_namespaced_config_map(name, {"metadata": {"name": cm, "labels": labels},
                                                 "data": {"k": cm}})
    return name


def _names(items: list[client.V1ConfigMap]) -> list[str]:
    return [item.metadata.name for item in items]


def test_pages_cover_the_list_once_in_order(core: client.CoreV1Api, ns: str) -> None:
    first = core.list_namespaced_config_map(ns, limit=3)
    assert _names(first.items) == NAMES[:3]
    assert first.metadata._continue and first.metadata.remaining_item_count == 4
    seen, token, versions = _names(first.items), first.metadata._continue, set()
    versions.add(first.metadata.resource_version)
    while token:
        chunk = core.list_namespaced_config_map(ns, limit=3, _continue=token)
        seen += _names(chunk.items)
        versions.add(chunk.metadata.resource_version)
        token = chunk.metadata._continue
    assert seen == NAMES
    assert len(versions) == 1, "every page carries the first page's resourceVersion"
    assert chunk.metadata.remaining_item_count is None  # the last page has none


def test_without_limit_or_with_a_large_one_the_list_is_whole(core: client.CoreV1Api,
                                                              ns: str) -> None:
    for kwargs in ({}, {"limit": 100}, {"limit": 0}):
        whole = core.list_namespaced_config_map(ns, **kwargs)
        assert _names(whole.items) == NAMES
        assert not whole.metadata._continue and whole.metadata.remaining_item_count is None


def test_selectors_page_without_a_remaining_count(core: client.CoreV1Api, ns: str) -> None:
    first = core.list_namespaced_config_map(ns, limit=2, label_selector="even=yes")
    assert _names(first.items) == ["cm-0", "cm-2"]
    assert first.metadata._continue and first.metadata.remaining_item_count is None
    rest = core.list_namespaced_config_map(ns, limit=2, label_selector="even=yes",
                                           _continue=first.metadata._continue)
    assert _names(rest.items) == ["cm-4", "cm-6"] and not rest.metadata._continue


def test_an_invalid_token_is_a_bad_request(core: client.CoreV1Api, ns: str) -> None:
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(ns, limit=2, _continue="not-a-token")
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["reason"] == "BadRequest"


def test_a_token_older_than_the_history_is_gone(core: client.CoreV1Api, ns: str) -> None:
    token = core.list_namespaced_config_map(ns, limit=2).metadata._continue
    for i in range(HISTORY + 1):  # push the token's version out of the kept history
        core.patch_namespaced_config_map(NAMES[0], ns, {"data": {"k": str(i)}})
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(ns, limit=2, _continue=token)
    status = json.loads(caught.value.body)
    assert caught.value.status == 410 and status["reason"] == "Expired"
    assert "continue parameter is too old" in status["message"]


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_chunk_size(apiserver: RunningApiServer, ns: str) -> None:
    result = subprocess.run(
        ["kubectl", "get", "configmaps", "-n", ns, "--chunk-size=2", "-o", "name", "-v=6"],
        check=False, env=apiserver.kubectl_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"configmap/{name}" for name in NAMES]
    asked = [line for line in result.stderr.splitlines() if "/configmaps?" in line]
    assert len(asked) == 4 and all("limit=2" in line for line in asked)
    assert sum("continue=" in line for line in asked) == 3

    table = subprocess.run(["kubectl", "get", "configmaps", "-n", ns, "--chunk-size=3"],
                           check=False, env=apiserver.kubectl_env(), capture_output=True,
                           text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == NAMES
