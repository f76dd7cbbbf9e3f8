"""kubectl, unchanged, against the lab API server."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.kube_apiserver import RunningApiServer, running_apiserver

pytestmark = [
    pytest.mark.lab,
    pytest.mark.kubectl,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
]

_APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: httpbin:1
        env: [{name: A, value: "1"}, {name: KEEP, value: "k"}]
        ports: [{containerPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, name: http}]
"""


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(tmp_path_factory.mktemp("kubectl")) as running:
        yield running


def kubectl(
    server: RunningApiServer, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["kubectl", *args],
        check=False,
        env=server.kubectl_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result


def test_version_and_api_resources(apiserver: RunningApiServer) -> None:
    version = json.loads(kubectl(apiserver, "version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.33.")
    table = kubectl(apiserver, "api-resources").stdout
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert rows["pods"][1] == "po" and rows["deployments"][1] == "deploy"
    assert rows["customresourcedefinitions"][1] == "crd,crds"
    assert "leases" in rows and "endpointslices" in rows
    namespaced = kubectl(apiserver, "api-resources", "--namespaced=false", "-o", "name").stdout
    assert "namespaces" in namespaced.split() and "pods" not in namespaced.split()


def test_apply_reapply_and_inspect(apiserver: RunningApiServer, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(_APP)
    out = kubectl(apiserver, "apply", "-f", str(manifest)).stdout
    assert "deployment.apps/web created" in out and "service/web created" in out

    changed = _APP.replace("replicas: 2", "replicas: 3").replace('value: "1"', 'value: "2"')
    manifest.write_text(changed.replace(', {name: KEEP, value: "k"}', ""))
    out = kubectl(apiserver, "apply", "-f", str(manifest)).stdout
    assert "deployment.apps/web configured" in out and "service/web unchanged" in out

    dep = json.loads(kubectl(apiserver, "get", "deploy", "web", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]
    assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]
    assert dep["metadata"]["generation"] == 2

    as_yaml = yaml.safe_load(kubectl(apiserver, "get", "svc", "web", "-o", "yaml").stdout)
    assert as_yaml["spec"]["clusterIP"].startswith("127.11.")
    wide = kubectl(apiserver, "get", "deploy,svc", "-o", "wide").stdout
    assert "httpbin:1" in wide and "app=web" in wide and "ClusterIP" in wide
    jsonpath = kubectl(
        apiserver, "get", "svc", "web", "-o", "jsonpath={.spec.ports[0].targetPort}"
    ).stdout
    assert jsonpath == "8080"
    described = kubectl(apiserver, "describe", "deployment", "web").stdout
    assert "3 desired" in described and "RollingUpdate" in described
    described = kubectl(apiserver, "describe", "service", "web").stdout
    assert "TargetPort:" in described and "8080/TCP" in described


def _apply(server: RunningApiServer, *objects: dict) -> None:
    kubectl(server, "apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(o) for o in objects))


def test_label_annotate_scale_delete(apiserver: RunningApiServer) -> None:
    dep = yaml.safe_load(_APP.split("---")[0])
    dep["metadata"] = {"name": "api", "namespace": "ops"}
    _apply(apiserver, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ops"}}, dep)
    kubectl(apiserver, "-n", "ops", "label", "deployment", "api", "tier=back")
    kubectl(apiserver, "-n", "ops", "annotate", "deployment", "api", "meshproof.io/run=r1")
    kubectl(apiserver, "-n", "ops", "scale", "deployment", "api", "--replicas=4")
    dep = json.loads(
        kubectl(apiserver, "-n", "ops", "get", "deploy", "-l", "tier=back", "-o", "json").stdout
    )["items"][0]
    assert dep["spec"]["replicas"] == 4
    assert dep["metadata"]["annotations"]["meshproof.io/run"] == "r1"
    kubectl(apiserver, "-n", "ops", "label", "deployment", "api", "tier-")
    assert (
        kubectl(apiserver, "-n", "ops", "get", "deploy", "-l", "tier=back", "-o", "name").stdout
        == ""
    )
    out = kubectl(apiserver, "-n", "ops", "delete", "deployment", "api").stdout
    assert 'deployment.apps "api" deleted' in out
    missing = kubectl(apiserver, "-n", "ops", "get", "deployment", "api", check=False)
    assert missing.returncode == 1
    assert 'Error from server (NotFound): deployments.apps "api" not found' in missing.stderr


def test_pods_across_namespaces_with_selectors(apiserver: RunningApiServer) -> None:
    _apply(apiserver, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sel"}})
    for name, ns in (("p1", "default"), ("p2", "sel")):
        _apply(
            apiserver,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"role": "probe"}},
                "spec": {"containers": [{"name": "c", "image": "curl:8"}]},
            },
        )
    out = kubectl(apiserver, "get", "pods", "-A", "-l", "role=probe").stdout
    assert "p1" in out and "p2" in out and "NAMESPACE" in out
    only = kubectl(
        apiserver, "get", "pods", "-A", "--field-selector", "metadata.namespace=sel", "-o", "name"
    ).stdout.split()
    assert only == ["pod/p2"]
    pending = kubectl(apiserver, "get", "pods", "-n", "sel").stdout
    assert "Pending" in pending and "0/1" in pending
    assert (
        "Service Account:  default"
        in kubectl(apiserver, "-n", "sel", "describe", "pod", "p2").stdout
    )


def test_raw_and_explain(apiserver: RunningApiServer) -> None:
    raw = json.loads(kubectl(apiserver, "get", "--raw", "/apis/apps/v1").stdout)
    assert raw["kind"] == "APIResourceList"
    assert any(r["name"] == "deployments/scale" for r in raw["resources"])
    explain = kubectl(apiserver, "explain", "pods", check=False)
    assert explain.returncode != 0 and "Traceback" not in explain.stderr


def test_custom_resources_with_kubectl(apiserver: RunningApiServer) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "gadgets",
                "singular": "gadget",
                "kind": "Gadget",
                "shortNames": ["gd"],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                        {"name": "Ready", "type": "string",
                         "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    kubectl(apiserver, "apply", "-f", "-", stdin=json.dumps(crd))
    kubectl(
        apiserver, "wait", "--for=condition=Established", "crd/gadgets.example.com", "--timeout=10s"
    )
    gadget = {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1"},
        "spec": {"size": 1},
    }
    kubectl(apiserver, "apply", "-f", "-", stdin=json.dumps(gadget))
    gadget["spec"] = {"size": 2}
    assert "configured" in kubectl(apiserver, "apply", "-f", "-", stdin=json.dumps(gadget)).stdout
    assert kubectl(apiserver, "get", "gd", "g1", "-o", "jsonpath={.spec.size}").stdout == "2"
    table = kubectl(apiserver, "get", "gadgets").stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    assert table[1].split()[:3] == ["g1", "2", "<none>"]
    kubectl(apiserver, "delete", "crd", "gadgets.example.com")


def test_generators_that_send_protobuf(apiserver: RunningApiServer) -> None:
    """kubectl's typed clients write protobuf: create <generator>, run, expose."""
    kubectl(apiserver, "create", "namespace", "gen")
    kubectl(apiserver, "-n", "gen", "create", "configmap", "cfg", "--from-literal=a=1")
    kubectl(apiserver, "-n", "gen", "create", "secret", "generic", "pw",
            "--from-literal=pw=hunter2")
    kubectl(apiserver, "-n", "gen", "create", "deployment", "web", "--image=nginx:1.27",
            "--replicas=0", "--port=8080")
    kubectl(apiserver, "-n", "gen", "run", "one", "--image=curl:8", "--labels=role=probe",
            "--env=X=1", "--restart=Never", "--", "sleep", "5")
    kubectl(apiserver, "-n", "gen", "expose", "deployment", "web", "--port=80",
            "--target-port=8080")

    def get(kind: str, name: str) -> dict:
        result: dict = json.loads(kubectl(apiserver, "-n", "gen", "get", kind, name, "-o",
                                          "json").stdout)
        return result

    assert get("configmap", "cfg")["data"] == {"a": "1"}
    assert get("secret", "pw")["data"] == {"pw": "aHVudGVyMg=="}
    dep = get("deployment", "web")
    assert dep["spec"]["replicas"] == 0  # a meaningful zero survives the decoding
    assert dep["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert dep["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 8080, "protocol": "TCP"}]
    pod = get("pod", "one")
    assert pod["metadata"]["labels"] == {"role": "probe"}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["args"] == ["sleep", "5"]
    assert pod["spec"]["containers"][0]["env"] == [{"name": "X", "value": "1"}]
    svc = get("service", "web")
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    assert svc["spec"]["selector"] == {"app": "web"}
