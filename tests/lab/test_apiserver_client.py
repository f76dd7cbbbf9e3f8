"""The official Python client against the lab API server: CRUD, selectors, watch, patch,
scale, status, custom objects, the dynamic client, and the errors as ``Status`` objects."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

from meshproof.waiting import eventually
from tests.support.kube_apiserver import RunningApiServer, running_apiserver

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("apiserver")) as running:
        yield running


@pytest.fixture(scope="module")
def api(apiserver: RunningApiServer) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(str(apiserver.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture()
def ns(api: client.ApiClient, request: pytest.FixtureRequest) -> str:
    name = request.node.name.replace("_", "-").lower()[:50].strip("-")
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def _pod(name: str, labels: dict[str, str] | None = None, image: str = "nginx:1.27") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "containers": [
                {"name": "app", "image": image, "ports": [{"containerPort": 80, "name": "http"}]}
            ]
        },
    }


def _deployment(name: str, replicas: int = 2) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "httpbin:1", "env": [{"name": "A", "value": "1"}]}
                    ]
                },
            },
        },
    }


def _status(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_core_crud_with_defaults(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_pod(ns, _pod("web", {"app": "web"}))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.namespace == ns
    assert created.spec.restart_policy == "Always"
    assert created.spec.termination_grace_period_seconds == 30
    assert created.spec.dns_policy == "ClusterFirst"
    assert created.spec.service_account_name == "default"
    assert created.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert created.status.phase == "Pending"

    created.metadata.labels["tier"] = "front"
    replaced = core.replace_namespaced_pod("web", ns, created)
    assert replaced.metadata.labels == {"app": "web", "tier": "front"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)

    svc = core.create_namespaced_service(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "name": "http"}]},
        },
    )
    assert svc.spec.type == "ClusterIP"
    assert svc.spec.cluster_ip.startswith("127.11.")
    assert svc.spec.ports[0].target_port == 80

    core.delete_namespaced_service("web", ns)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_service("web", ns)
    assert err.value.status == 404
    assert core.read_namespaced_service_account("default", ns).metadata.name == "default"


def test_generate_name(api: client.ApiClient, ns: str) -> None:
    cm = client.CoreV1Api(api).create_namespaced_config_map(
        ns, {"metadata": {"generateName": "cfg-"}, "data": {"k": "v"}}
    )
    assert cm.metadata.name.startswith("cfg-") and len(cm.metadata.name) == 9


def test_label_and_field_selectors(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(ns, _pod("a", {"app": "x", "track": "stable"}))
    core.create_namespaced_pod(ns, _pod("b", {"app": "x", "track": "canary"}))
    core.create_namespaced_pod(ns, _pod("c", {"app": "y"}))

    def names(**kw: str) -> list[str]:
        return sorted(p.metadata.name for p in core.list_namespaced_pod(ns, **kw).items)

    assert names(label_selector="app=x") == ["a", "b"]
    assert names(label_selector="app=x,track!=canary") == ["a"]
    assert names(label_selector="track in (canary, stable)") == ["a", "b"]
    assert names(label_selector="app notin (x)") == ["c"]
    assert names(label_selector="!track") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="status.phase=Pending,metadata.name!=a") == ["b", "c"]
    everywhere = core.list_pod_for_all_namespaces(label_selector="app=y").items
    assert [p.metadata.name for p in everywhere] == ["c"]
    with pytest.raises(ApiException) as err:
        core.list_namespaced_pod(ns, label_selector="app in x")
    assert err.value.status == 400


def test_watch_streams_changes_and_resumes(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    listing = core.list_namespaced_config_map(ns)
    start_rv = listing.metadata.resource_version
    core.create_namespaced_config_map(ns, {"metadata": {"name": "one"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("one", ns, {"data": {"a": "2"}})
    core.delete_namespaced_config_map("one", ns)

    seen = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map, ns, resource_version=start_rv, timeout_seconds=2
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "one"), ("MODIFIED", "one"), ("DELETED", "one")]


def test_watch_live_events_with_selector(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    seen: list[tuple[str, str]] = []
    # Watching from the list's version makes the test independent of when the watch starts.
    since = core.list_namespaced_pod(ns).metadata.resource_version

    def watcher() -> None:
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_pod, ns, label_selector="app=live",
                              resource_version=since, timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if len(seen) == 2:
                w.stop()

    thread = threading.Thread(target=watcher)
    thread.start()
    core.create_namespaced_pod(ns, _pod("other", {"app": "other"}))
    core.create_namespaced_pod(ns, _pod("live", {"app": "live"}))
    core.patch_namespaced_pod("live", ns, {"metadata": {"labels": {"app": "gone"}}})
    thread.join(10)
    assert seen == [("ADDED", "live"), ("DELETED", "live")]


def test_watch_from_too_old_version_is_410(apiserver: RunningApiServer, tmp_path: Path) -> None:
    with running_apiserver(tmp_path, cluster="gcp-gke", history=5) as small:
        api_client = config.new_client_from_config(str(small.kubeconfig))
        core = client.CoreV1Api(api_client)
        old_rv = core.list_namespaced_config_map("default").metadata.resource_version
        for i in range(10):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}"}})
        resp = core.list_namespaced_config_map(
            "default",
            watch=True,
            resource_version=old_rv,
            timeout_seconds=2,
            _preload_content=False,
        )
        first = json.loads(resp.readline())
        assert first["type"] == "ERROR"
        assert first["object"]["code"] == 410
        assert first["object"]["kind"] == "Status"
        with pytest.raises(ApiException) as err:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=old_rv,
                timeout_seconds=2,
            ):
                pass
        assert err.value.status == 410
        api_client.close()


def test_apps_crud_patch_scale_status(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    dep = apps.create_namespaced_deployment(ns, _deployment("web"))
    assert dep.metadata.generation == 1
    assert dep.spec.strategy.type == "RollingUpdate"
    assert dep.spec.strategy.rolling_update.max_surge == "25%"
    assert dep.spec.revision_history_limit == 10

    # dict body -> strategic merge: env merged by name, not replaced
    patched = apps.patch_namespaced_deployment(
        "web",
        ns,
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}
                }
            }
        },
    )
    env = {e.name: e.value for e in patched.spec.template.spec.containers[0].env}
    assert env == {"A": "1", "B": "2"}
    assert patched.spec.template.spec.containers[0].image == "httpbin:1"
    assert patched.metadata.generation == 2

    # list body -> json-patch
    patched = apps.patch_namespaced_deployment(
        "web",
        ns,
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "httpbin:2"}],
    )
    assert patched.spec.template.spec.containers[0].image == "httpbin:2"

    scale = apps.read_namespaced_deployment_scale("web", ns)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 5}})
    assert apps.read_namespaced_deployment("web", ns).spec.replicas == 5
    apps.replace_namespaced_deployment_scale(
        "web",
        ns,
        {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": "web"},
            "spec": {"replicas": 3},
        },
    )
    assert apps.read_namespaced_deployment_scale("web", ns).spec.replicas == 3

    # status writes only status; a main-resource write never changes status
    apps.patch_namespaced_deployment_status(
        "web", ns, {"status": {"readyReplicas": 3, "replicas": 3}, "spec": {"replicas": 9}}
    )
    dep = apps.read_namespaced_deployment("web", ns)
    assert dep.status.ready_replicas == 3 and dep.spec.replicas == 3
    dep.status.ready_replicas = 0
    apps.replace_namespaced_deployment("web", ns, dep)
    assert apps.read_namespaced_deployment("web", ns).status.ready_replicas == 3


def test_owner_references_are_garbage_collected(api: client.ApiClient, ns: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    dep = apps.create_namespaced_deployment(ns, _deployment("gc", replicas=1))
    owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gc",
        "uid": dep.metadata.uid,
        "controller": True,
    }
    rs = _deployment("gc-1")
    rs.update(kind="ReplicaSet", metadata={"name": "gc-1", "ownerReferences": [owner]})
    rs["spec"]["selector"]["matchLabels"] = rs["spec"]["template"]["metadata"]["labels"]
    rs_obj = apps.create_namespaced_replica_set(ns, rs)
    pod = _pod("gc-1-abcde", {"app": "gc-1"})
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gc-1", "uid": rs_obj.metadata.uid}
    ]
    core.create_namespaced_pod(ns, pod)

    apps.delete_namespaced_deployment("gc", ns)
    assert apps.list_namespaced_replica_set(ns).items == []
    assert core.list_namespaced_pod(ns).items == []  # unscheduled pods go at once


def test_graceful_pod_delete_waits_for_the_kubelet(
    apiserver: RunningApiServer, api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    pod = _pod("slow")
    pod["spec"]["nodeName"] = "lab-node"
    core.create_namespaced_pod(ns, pod)
    deleted = core.delete_namespaced_pod("slow", ns)
    assert deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.deletion_grace_period_seconds == 30
    assert core.read_namespaced_pod("slow", ns).metadata.deletion_timestamp is not None
    pods = apiserver.store.kind_for("v1", "Pod")
    apiserver.call(apiserver.store.finalize(pods, "slow", namespace=ns))
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("slow", ns)
    assert err.value.status == 404


def test_errors_are_status_objects(
    apiserver: RunningApiServer, api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("missing", ns)
    assert err.value.status == 404
    assert _status(err.value)["reason"] == "NotFound"
    assert _status(err.value)["message"] == 'pods "missing" not found'
    assert _status(err.value)["details"] == {"name": "missing", "group": "", "kind": "pods"}

    core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "dup"}})
    assert (err.value.status, _status(err.value)["reason"]) == (409, "AlreadyExists")

    first = core.read_namespaced_config_map("dup", ns)
    core.patch_namespaced_config_map("dup", ns, {"data": {"x": "1"}})
    first.data = {"x": "stale"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("dup", ns, first)
    assert (err.value.status, _status(err.value)["reason"]) == (409, "Conflict")
    assert "the object has been modified" in _status(err.value)["message"]

    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, _pod("Bad_Name"))
    status = _status(err.value)
    assert (err.value.status, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(ns, {"metadata": {"name": "empty"}, "spec": {"containers": []}})
    assert _status(err.value)["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.containers",
    }

    bad = client.Configuration()
    bad.host, bad.ssl_ca_cert = apiserver.url, str(apiserver.ca_file)
    bad.api_key = {"authorization": "Bearer not-the-token"}
    with client.ApiClient(bad) as anonymous, pytest.raises(ApiException) as err:
        client.CoreV1Api(anonymous).list_namespace()
    assert (err.value.status, _status(err.value)["reason"]) == (401, "Unauthorized")
    refused = [r for r in apiserver.requests() if r.code == 401]
    assert ("system:anonymous", "list", "namespaces") in [(r.user, r.verb, r.resource)
                                                          for r in refused]


def test_request_log_says_who_wrote_what(
    apiserver: RunningApiServer, api: client.ApiClient, ns: str
) -> None:
    client.CoreV1Api(api).create_namespaced_secret(
        ns, {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
    )
    records = [r for r in apiserver.requests() if r.namespace == ns and r.resource == "secrets"]
    assert [(r.user, r.verb, r.name, r.code) for r in records] == [
        ("lab-admin", "create", "s", 201)
    ]
    assert apiserver.token not in apiserver.request_log.read_text()


def test_namespace_deletion_removes_its_content(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "cm"}})
    gone = core.delete_namespace("doomed")
    assert gone["status"]["phase"] == "Terminating"

    def namespace_gone() -> None:
        try:
            core.read_namespace("doomed")
        except ApiException as exc:
            assert exc.status == 404
            return
        raise AssertionError("namespace doomed still exists")

    eventually(namespace_gone, timeout=5, interval=0.05, what="namespace doomed deleted")
    assert (
        core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=doomed").items
        == []
    )


_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.size",
                        "statusReplicasPath": ".status.size",
                    },
                },
            }
        ],
    },
}


def test_custom_resources(api: client.ApiClient, ns: str) -> None:
    ext = client.ApiextensionsV1Api(api)
    crd = ext.create_custom_resource_definition(_CRD)
    assert {c.type for c in crd.status.conditions} == {"Established", "NamesAccepted"}
    custom = client.CustomObjectsApi(api)
    args = ("example.com", "v1", ns, "widgets")
    custom.create_namespaced_custom_object(
        *args,
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 1, "colour": "red", "tags": ["a"]},
        },
    )
    patched = custom.patch_namespaced_custom_object(
        *args, "w1", {"spec": {"colour": "blue", "tags": ["b"]}}
    )
    assert patched["spec"] == {"size": 1, "colour": "blue", "tags": ["b"]}  # merge-patch
    custom.patch_namespaced_custom_object_status(*args, "w1", {"status": {"size": 1}})
    scale = custom.get_namespaced_custom_object_scale(*args, "w1")
    assert scale["spec"]["replicas"] == 1 and scale["status"]["replicas"] == 1
    custom.patch_namespaced_custom_object_scale(*args, "w1", {"spec": {"replicas": 4}})
    assert custom.get_namespaced_custom_object(*args, "w1")["spec"]["size"] == 4
    listed = custom.list_namespaced_custom_object(*args)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]

    ext.delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as err:
        custom.list_namespaced_custom_object(*args)
    assert err.value.status == 404


def test_dynamic_client_uses_discovery(api: client.ApiClient, ns: str) -> None:
    dyn = dynamic.DynamicClient(api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.create(body=_deployment("dyn", replicas=1), namespace=ns)
    got = deployments.get(name="dyn", namespace=ns)
    assert got.spec.replicas == 1
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    assert pods.namespaced and "po" in pods.short_names
    leases = dyn.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    leases.create(
        body={"metadata": {"name": "run-lock"}, "spec": {"holderIdentity": "me"}}, namespace=ns
    )
    assert leases.get(name="run-lock", namespace=ns).spec.holderIdentity == "me"


def test_admission_hook_changes_and_refuses(
    apiserver: RunningApiServer, api: client.ApiClient, ns: str
) -> None:
    from meshproof.lab.kube.interfaces import Invalid, ResourceKind

    async def hook(res: ResourceKind, op: str, obj: dict) -> dict:
        if res.plural == "configmaps" and obj["metadata"]["namespace"] == ns:
            if obj.get("data", {}).get("refuse"):
                raise Invalid(f'ConfigMap "{obj["metadata"]["name"]}" is invalid: refused')
            obj["metadata"].setdefault("annotations", {})["hooked"] = op
        return obj

    apiserver.store.add_admission_hook(hook)
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "h"}})
    assert cm.metadata.annotations == {"hooked": "CREATE"}
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": "r"}, "data": {"refuse": "yes"}}
        )
    assert err.value.status == 422


def test_events_recorded_by_the_lab(
    apiserver: RunningApiServer, api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    pod = core.create_namespaced_pod(ns, _pod("ev"))
    apiserver.call(
        apiserver.store.record_event(
            api.sanitize_for_serialization(pod), reason="Pulled", message="image pulled"
        )
    )
    events = core.list_namespaced_event(
        ns, field_selector=f"involvedObject.name=ev,involvedObject.uid={pod.metadata.uid}"
    )
    assert [(e.reason, e.message) for e in events.items] == [("Pulled", "image pulled")]


def test_chaosk8s_actions_and_probes(apiserver: RunningApiServer, ns: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from chaosk8s.deployment.actions import scale_deployment
    from chaosk8s.pod.actions import terminate_pods
    from chaosk8s.pod.probes import count_pods, pods_in_phase

    # chaosk8s loads the kubeconfig into the client's global default configuration; the
    # kubernetes package reads KUBECONFIG once, at import. Both are put back afterwards.
    from kubernetes.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(apiserver.kubeconfig))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(apiserver.kubeconfig))
    monkeypatch.setattr(client.Configuration, "_default", client.Configuration._default)
    for attr in ("verify_ssl", "debug"):
        monkeypatch.setattr(client.Configuration, attr, None, raising=False)
    secrets = {"KUBERNETES_CONTEXT": apiserver.cluster}
    api_client = config.new_client_from_config(str(apiserver.kubeconfig))
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(ns, _deployment("chaos", replicas=1))
    for i in range(3):
        core.create_namespaced_pod(ns, _pod(f"victim-{i}", {"app": "victim"}))

    assert count_pods(label_selector="app=victim", ns=ns, secrets=secrets) == 3
    assert pods_in_phase(label_selector="app=victim", phase="Pending", ns=ns, secrets=secrets)
    terminate_pods(label_selector="app=victim", ns=ns, qty=2, rand=False, secrets=secrets)
    assert len(core.list_namespaced_pod(ns, label_selector="app=victim").items) == 1
    scale_deployment("chaos", 3, ns=ns, secrets=secrets)
    assert apps.read_namespaced_deployment("chaos", ns).spec.replicas == 3
    writes = [r for r in apiserver.requests() if r.namespace == ns and r.verb == "delete"]
    assert len(writes) == 2 and all(r.resource == "pods" for r in writes)
    api_client.close()


def test_bookmarks_and_deletecollection(tmp_path: Path) -> None:
    with running_apiserver(tmp_path, bookmark_interval=0.2) as quick:
        api_client = config.new_client_from_config(str(quick.kubeconfig))
        core = client.CoreV1Api(api_client)
        for i in range(3):
            core.create_namespaced_config_map("default", {"metadata": {
                "name": f"bulk-{i}", "labels": {"bulk": "yes" if i < 2 else "no"}}})
        rv = core.list_namespaced_config_map("default").metadata.resource_version
        resp = core.list_namespaced_config_map("default", watch=True, resource_version=rv,
                                               allow_watch_bookmarks=True, timeout_seconds=2,
                                               _preload_content=False)
        bookmark = json.loads(resp.readline())
        assert bookmark["type"] == "BOOKMARK"
        assert bookmark["object"]["metadata"]["resourceVersion"] == rv
        resp.release_conn()
        core.delete_collection_namespaced_config_map("default", label_selector="bulk=yes")
        left = core.list_namespaced_config_map("default").items
        assert [c.metadata.name for c in left] == ["bulk-2"]
        api_client.close()


def test_extra_authenticators_admit_other_tokens(apiserver: RunningApiServer) -> None:
    def service_accounts(token: str) -> str | None:
        return "system:serviceaccount:istio-system:istiod" if token == "sa-token" else None

    apiserver.server.add_authenticator(service_accounts)
    conf = client.Configuration()
    conf.host, conf.ssl_ca_cert = apiserver.url, str(apiserver.ca_file)
    conf.api_key = {"authorization": "Bearer sa-token"}
    with client.ApiClient(conf) as as_istiod:
        client.CoreV1Api(as_istiod).list_namespaced_service("default")
    last = [r for r in apiserver.requests() if r.resource == "services"][-1]
    assert last.user == "system:serviceaccount:istio-system:istiod" and last.code == 200


def test_discovery_documents(apiserver: RunningApiServer, api: client.ApiClient) -> None:
    import requests

    version = client.VersionApi(api).get_code()
    assert version.git_version == "v1.33.1" and version.minor == "33"
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the lab's CA
    session.verify = str(apiserver.ca_file)
    session.headers["Authorization"] = f"Bearer {apiserver.token}"
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    resp = session.get(f"{apiserver.url}/apis", headers={"Accept": f"{aggregated},"
                                                                   "application/json"},
                       timeout=10)
    assert resp.headers["Content-Type"] == aggregated
    groups = {g["metadata"]["name"]: g for g in resp.json()["items"]}
    apps = {r["resource"]: r for r in groups["apps"]["versions"][0]["resources"]}
    assert apps["deployments"]["shortNames"] == ["deploy"]
    assert {s["subresource"] for s in apps["deployments"]["subresources"]} == {"scale",
                                                                              "status"}
    core = session.get(f"{apiserver.url}/api", headers={"Accept": aggregated}, timeout=10).json()
    pods = next(r for r in core["items"][0]["versions"][0]["resources"]
                if r["resource"] == "pods")
    assert pods["scope"] == "Namespaced" and pods["categories"] == ["all"]
    plain = session.get(f"{apiserver.url}/apis", timeout=10).json()
    assert plain["kind"] == "APIGroupList"
    assert "autoscaling" in {g["name"] for g in plain["groups"]}
    v1 = session.get(f"{apiserver.url}/api/v1", timeout=10).json()
    names = {r["name"]: r for r in v1["resources"]}
    assert names["pods/exec"]["kind"] == "PodExecOptions"
    assert names["pods/eviction"]["group"] == "policy"
    del session.headers["Authorization"]
    unauthenticated = session.get(f"{apiserver.url}/version", timeout=10)
    assert unauthenticated.status_code == 401
