"""Sidecar injection through a real MutatingWebhookConfiguration, called over real TLS.

The lab's store calls the webhook the way a Kubernetes API server does; the
webhook is istiod's ``/inject`` logic served by a TLS server on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from meshproof import pki
from meshproof.lab.admission.webhooks import WebhookAdmission, WebhookCallFailed
from meshproof.lab.istiod.inject import InjectionSettings, inject, review_response
from meshproof.lab.istiod.native import default_mode, istio_version, native_sidecars
from meshproof.lab.kube.store import MemoryStore

pytestmark = pytest.mark.lab

SETTINGS = InjectionSettings(image="docker.io/istio/proxyv2:1.31.0", cluster_id="aws-eks",
                             network="network1")
WEBHOOK_IP = "127.0.99.17"


def kind(store: MemoryStore, api_version: str, name: str) -> Any:
    return store.kind_for(api_version, name)


def webhook_config(ca_pem: bytes, policy: str = "Fail") -> dict[str, Any]:
    # The shape of Istio's istio-sidecar-injector namespace webhook.
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "istio-sidecar-injector"},
        "webhooks": [{
            "name": "namespace.sidecar-injector.istio.io",
            "clientConfig": {
                "service": {"name": "istiod", "namespace": "istio-system", "path": "/inject",
                            "port": 443},
                "caBundle": base64.b64encode(ca_pem).decode(),
            },
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"istio-injection": "enabled"}},
            "objectSelector": {"matchExpressions": [
                {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}]},
            "failurePolicy": policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    }


async def inject_handler(request: web.Request) -> web.Response:
    return web.json_response(review_response(await request.json(), SETTINGS))


@asynccontextmanager
async def webhook_server() -> AsyncIterator[tuple[bytes, int]]:
    root = pki.make_root_ca()
    serving = pki.issue_server_cert(root, ["istiod.istio-system.svc"],
                                    ttl=datetime.timedelta(hours=1))
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_bytes(serving.chain_pem())
        key.write_bytes(serving.key_pem())
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        app = web.Application()
        app.router.add_post("/inject", inject_handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, WEBHOOK_IP, 0, ssl_context=context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            yield root.cert_pem(), port
        finally:
            await runner.cleanup()


async def istiod_service(store: MemoryStore, port: int) -> None:
    await store.create(kind(store, "v1", "Namespace"),
                       {"metadata": {"name": "istio-system"}}, namespace=None)
    await store.create(kind(store, "v1", "Service"), {
        "metadata": {"name": "istiod", "namespace": "istio-system"},
        "spec": {"selector": {"app": "istiod"},
                 "ports": [{"name": "https-webhook", "port": 443, "targetPort": 15017}]},
    }, namespace="istio-system")
    await store.create(kind(store, "v1", "Endpoints"), {
        "metadata": {"name": "istiod", "namespace": "istio-system"},
        "subsets": [{"addresses": [{"ip": WEBHOOK_IP}],
                     "ports": [{"name": "https-webhook", "port": port}]}],
    }, namespace="istio-system")


def pod(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app": "helloworld", **labels}},
            "spec": {"containers": [{"name": "helloworld", "image": "helloworld:v1",
                                     "ports": [{"containerPort": 5000}]}]}}


def with_webhook(scenario: Callable[[bytes, int], Awaitable[None]]) -> None:
    async def main() -> None:
        async with webhook_server() as (ca_pem, port):
            await scenario(ca_pem, port)

    asyncio.run(main())


def test_pods_in_labelled_namespaces_get_a_sidecar() -> None:
    with_webhook(pods_in_labelled_namespaces_get_a_sidecar)


def test_an_unreachable_webhook_refuses_pods_under_fail_policy() -> None:
    with_webhook(an_unreachable_webhook_refuses_pods_under_fail_policy)


def test_a_serving_cert_from_another_ca_is_not_trusted() -> None:
    with_webhook(a_serving_cert_from_another_ca_is_not_trusted)


async def pods_in_labelled_namespaces_get_a_sidecar(ca_pem: bytes, port: int) -> None:
    store = MemoryStore("aws-eks")
    store.add_admission_hook(WebhookAdmission(store))
    await istiod_service(store, port)
    await store.create(kind(store, "admissionregistration.k8s.io/v1",
                            "MutatingWebhookConfiguration"), webhook_config(ca_pem),
                       namespace=None)
    ns_kind, pod_kind = kind(store, "v1", "Namespace"), kind(store, "v1", "Pod")
    await store.create(ns_kind, {"metadata": {"name": "sample",
                                              "labels": {"istio-injection": "enabled"}}},
                       namespace=None)
    await store.create(ns_kind, {"metadata": {"name": "plain"}}, namespace=None)

    injected = await store.create(pod_kind, pod("a"), namespace="sample")
    opted_out = await store.create(
        pod_kind, pod("b", **{"sidecar.istio.io/inject": "false"}), namespace="sample")
    outside = await store.create(pod_kind, pod("c"), namespace="plain")

    def names(p: dict[str, Any]) -> list[str]:
        return [c["name"] for c in p["spec"]["containers"]]

    # Native sidecar, as current istiod injects on a 1.33+ kubelet
    # (pkg/kube/inject/testdata/inject/native-sidecar-opt-in.yaml.injected).
    assert names(injected) == ["helloworld"]
    inits = injected["spec"]["initContainers"]
    assert [(c["name"], c.get("restartPolicy")) for c in inits] == [
        ("istio-init", None), ("istio-proxy", "Always")]
    assert inits[1]["startupProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 15021}
    assert inits[1]["lifecycle"]["preStop"]["exec"]["command"] == [
        "pilot-agent", "request", "--debug-port=15020", "POST", "drain"]
    notes = injected["metadata"]["annotations"]
    assert notes["prometheus.io/port"] == "15020"
    status = json.loads(notes["sidecar.istio.io/status"])
    assert (status["initContainers"], status["containers"]) == (
        ["istio-init", "istio-proxy"], None)
    assert injected["metadata"]["labels"]["security.istio.io/tlsMode"] == "istio"
    assert names(opted_out) == ["helloworld"]
    assert names(outside) == ["helloworld"]
    await store.close()


async def an_unreachable_webhook_refuses_pods_under_fail_policy(ca_pem: bytes, _: int) -> None:
    store = MemoryStore("aws-eks")
    store.add_admission_hook(WebhookAdmission(store))
    closed_port = 9  # discard: nothing listens there on loopback
    await istiod_service(store, closed_port)
    mwc = kind(store, "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
    await store.create(mwc, webhook_config(ca_pem), namespace=None)
    await store.create(kind(store, "v1", "Namespace"),
                       {"metadata": {"name": "sample", "labels": {"istio-injection": "enabled"}}},
                       namespace=None)
    with pytest.raises(WebhookCallFailed, match="failed calling webhook"):
        await store.create(kind(store, "v1", "Pod"), pod("a"), namespace="sample")

    await store.delete(mwc, "istio-sidecar-injector", namespace=None)
    await store.create(mwc, webhook_config(ca_pem, policy="Ignore"), namespace=None)
    admitted = await store.create(kind(store, "v1", "Pod"), pod("b"), namespace="sample")
    assert [c["name"] for c in admitted["spec"]["containers"]] == ["helloworld"]
    await store.close()


async def a_serving_cert_from_another_ca_is_not_trusted(_: bytes, port: int) -> None:
    foreign = pki.make_root_ca(common_name="someone else")
    store = MemoryStore("aws-eks")
    store.add_admission_hook(WebhookAdmission(store))
    await istiod_service(store, port)
    await store.create(kind(store, "admissionregistration.k8s.io/v1",
                            "MutatingWebhookConfiguration"),
                       webhook_config(foreign.cert_pem()), namespace=None)
    await store.create(kind(store, "v1", "Namespace"),
                       {"metadata": {"name": "sample", "labels": {"istio-injection": "enabled"}}},
                       namespace=None)
    with pytest.raises(WebhookCallFailed, match="certificate verify failed"):
        await store.create(kind(store, "v1", "Pod"), pod("a"), namespace="sample")
    await store.close()


def test_classic_injection_and_the_pod_annotation_override() -> None:
    """Classic sidecars where istiod does not inject native ones, and the pod annotation
    ``sidecar.istio.io/nativeSidecar`` taking precedence either way (istio/istio
    ``pkg/kube/inject/inject.go``; testdata ``native-sidecar-opt-in`` / ``-opt-out``)."""
    classic = InjectionSettings(image=SETTINGS.image, cluster_id="aws-eks", network="network1",
                                native_sidecars=False)
    plain = inject(pod("a"), "sample", classic)
    assert [c["name"] for c in plain["spec"]["containers"]] == ["helloworld", "istio-proxy"]
    assert "restartPolicy" not in plain["spec"]["containers"][1]
    assert [c["name"] for c in plain["spec"]["initContainers"]] == ["istio-init"]
    opted_in = pod("b")
    opted_in["metadata"]["annotations"] = {"sidecar.istio.io/nativeSidecar": "true"}
    assert [c["name"] for c in inject(opted_in, "sample", classic)["spec"]["initContainers"]
            ] == ["istio-init", "istio-proxy"]
    opted_out = pod("c")
    opted_out["metadata"]["annotations"] = {"sidecar.istio.io/nativeSidecar": "false"}
    assert [c["name"] for c in inject(opted_out, "sample", SETTINGS)["spec"]["containers"]
            ] == ["helloworld", "istio-proxy"]


@pytest.mark.parametrize(("image", "env", "kubelets", "native"), [
    ("docker.io/istio/pilot:1.31.0", "", ["v1.33.1"], True),
    ("docker.io/istio/pilot:1.31.0", "", ["v1.33.1", "v1.32.4"], False),
    ("docker.io/istio/pilot:1.31.0", "false", ["v1.33.1"], False),
    ("docker.io/istio/pilot:1.26.3", "", ["v1.33.1"], False),
    ("docker.io/istio/pilot:1.26.3", "true", ["v1.30.0"], True),
    ("docker.io/istio/pilot:1.27.0", "auto", None, False),
])
def test_istiod_decides_native_sidecars_from_its_version_env_and_kubelets(
        image: str, env: str, kubelets: list[str] | None, native: bool) -> None:
    """``ENABLE_NATIVE_SIDECARS`` defaults to ``auto`` (pilot/pkg/features/pilot.go), which
    needs every kubelet at 1.33+ (webhook.go ``DetectNativeSidecar``); before 1.27 it was off
    (manifests/helm-profiles/compatibility-version-1.26.yaml, "1.27 behavioral changes")."""
    mode = env or default_mode(istio_version(image))
    assert native_sidecars(mode, kubelets) is native
