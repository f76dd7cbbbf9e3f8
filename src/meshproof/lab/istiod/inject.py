"""Sidecar injection as istiod's ``/inject`` webhook does it.

The injected pod has the shape of Istio's default ``sidecar`` template (istio/istio
``manifests/charts/istio-control/istio-discovery/files/injection-template.yaml``):
an ``istio-init`` init container, an ``istio-proxy`` container (``proxy sidecar`` args,
port 15090 ``http-envoy-prom``, startup and readiness probes on 15021
``/healthz/ready``, the ISTIO_META_* environment), the Istio volumes, the
``sidecar.istio.io/status`` and Prometheus annotations, and the
``security.istio.io/tlsMode`` / canonical-service labels.

Where the proxy goes depends on native sidecars (the template's ``$nativeSidecar``):
classic injection appends it to ``containers``; native injection (Istio ≥ 1.28 on
kubelets ≥ 1.33, ``pkg/kube/inject/webhook.go`` ``DetectNativeSidecar``) puts it in
``initContainers`` after ``istio-init`` with ``restartPolicy: Always`` and a preStop
``pilot-agent request POST drain``, and the status annotation lists it among the init
containers (``pkg/kube/inject/testdata/inject/native-sidecar-opt-in.yaml.injected``). The
pod annotation ``sidecar.istio.io/nativeSidecar`` overrides istiod's setting either way.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import yaml

__all__ = ["InjectionSettings", "inject", "review_response", "skip_reason",
           "wants_native_sidecar"]

Obj = dict[str, Any]

_VOLUMES: list[Obj] = [
    {"name": "workload-socket", "emptyDir": {}},
    {"name": "credential-socket", "emptyDir": {}},
    {"name": "workload-certs", "emptyDir": {}},
    {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
    {"name": "istio-data", "emptyDir": {}},
    {"name": "istio-podinfo", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
    ]}},
    {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
    {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
]

_MOUNTS: list[Obj] = [
    {"name": "workload-socket", "mountPath": "/var/run/secrets/workload-spiffe-uds"},
    {"name": "credential-socket", "mountPath": "/var/run/secrets/credential-uds"},
    {"name": "workload-certs", "mountPath": "/var/run/secrets/workload-spiffe-credentials"},
    {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
    {"name": "istio-data", "mountPath": "/var/lib/istio/data"},
    {"name": "istio-envoy", "mountPath": "/etc/istio/proxy"},
    {"name": "istio-token", "mountPath": "/var/run/secrets/tokens"},
    {"name": "istio-podinfo", "mountPath": "/etc/istio/pod"},
]


@dataclass(frozen=True, slots=True)
class InjectionSettings:
    """What istiod knows when it injects: its image, cluster, network and mesh config."""

    image: str
    cluster_id: str
    network: str
    mesh_id: str = "mesh1"
    trust_domain: str = "cluster.local"
    proxy_config: Obj = field(default_factory=dict)
    """meshConfig.defaultConfig (proxyStatsMatcher and the like), merged with the pod's
    ``proxy.istio.io/config`` annotation."""
    native_sidecars: bool = True
    """Whether istiod injects native sidecars (its ``ENABLE_NATIVE_SIDECARS`` decision)."""


def wants_native_sidecar(pod: Obj, settings: InjectionSettings) -> bool:
    """istiod's setting, unless the pod's ``sidecar.istio.io/nativeSidecar`` says otherwise
    (``pkg/kube/inject/inject.go``: the annotation takes precedence over the feature flag)."""
    flag = str(((pod.get("metadata") or {}).get("annotations") or {}).get(
        "sidecar.istio.io/nativeSidecar", "")).lower()
    if flag in ("true", "false"):
        return flag == "true"
    return settings.native_sidecars


def skip_reason(pod: Obj) -> str:
    """Why a pod that reached the webhook is not injected ('' when it is)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    if spec.get("hostNetwork"):
        return "hostNetwork"
    if "sidecar.istio.io/status" in annotations:
        return "already injected"
    flag = labels.get("sidecar.istio.io/inject", annotations.get("sidecar.istio.io/inject", ""))
    if str(flag).lower() == "false":
        return "sidecar.istio.io/inject=false"
    return ""


def _owner_workload(meta: Obj) -> tuple[str, str]:
    """The workload name and owner as istio's ``ISTIO_META_WORKLOAD_NAME`` / ``OWNER``."""
    name = meta.get("name") or meta.get("generateName", "").rstrip("-")
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet":
            rs = ref.get("name", "")
            deployment = rs.rsplit("-", 1)[0] if "-" in rs else rs
            return deployment, f"kubernetes://apis/apps/v1/namespaces/{{ns}}/deployments/{deployment}"
        if ref.get("kind") in ("StatefulSet", "DaemonSet", "Job"):
            kind = ref["kind"].lower() + "s"
            group = "batch/v1" if ref["kind"] == "Job" else "apps/v1"
            return ref.get("name", ""), f"kubernetes://apis/{group}/namespaces/{{ns}}/{kind}/{ref.get('name', '')}"
    return name, f"kubernetes://apis/v1/namespaces/{{ns}}/pods/{name}"


def _proxy_config(settings: InjectionSettings, annotations: Obj) -> Obj:
    config = copy.deepcopy(settings.proxy_config)
    override = annotations.get("proxy.istio.io/config")
    if override:
        try:
            loaded = json.loads(override) if override.strip().startswith("{") else None
        except ValueError:
            loaded = None
        if loaded is None:
            loaded = yaml.safe_load(override) or {}
        config.update(loaded)
    return config


_PROBES = (("readinessProbe", "readyz"), ("livenessProbe", "livez"),
           ("startupProbe", "startupz"))


def rewrite_probes(containers: list[Obj]) -> dict[str, Obj]:
    """Point the apps' HTTP and TCP probes at pilot-agent on 15020, as istiod's default
    ``rewriteAppHTTPProbe`` does, so the kubelet's plaintext probes survive STRICT mTLS.

    Returns the original probes by their new path (the ``ISTIO_KUBE_APP_PROBERS`` value).
    """
    probers: dict[str, Obj] = {}
    for container in containers:
        for field_name, suffix in _PROBES:
            probe = container.get(field_name)
            if not probe or not ("httpGet" in probe or "tcpSocket" in probe):
                continue
            path = f"/app-health/{container.get('name', '')}/{suffix}"
            original = {k: probe[k] for k in ("httpGet", "tcpSocket") if k in probe}
            original["timeoutSeconds"] = probe.get("timeoutSeconds", 1)
            if "httpGet" in original:
                original["httpGet"] = {k: v for k, v in original["httpGet"].items()
                                       if k in ("path", "port", "scheme", "httpHeaders")}
            probers[path] = original
            rewritten = {k: v for k, v in probe.items() if k not in ("httpGet", "tcpSocket")}
            rewritten["httpGet"] = {"path": path, "port": 15020, "scheme": "HTTP"}
            container[field_name] = rewritten
    return probers


def inject(pod: Obj, namespace: str, settings: InjectionSettings) -> Obj:
    """The pod with the sidecar added (a copy; the input is not changed)."""
    pod = copy.deepcopy(pod)
    native = wants_native_sidecar(pod, settings)
    meta = pod.setdefault("metadata", {})
    spec = pod.setdefault("spec", {})
    labels = meta.setdefault("labels", {})
    annotations = meta.setdefault("annotations", {})
    app_containers = [c.get("name", "") for c in spec.get("containers") or []]
    workload, owner = _owner_workload(meta)
    owner = owner.format(ns=namespace)
    pod_ports = [
        {k: p[k] for k in ("containerPort", "name", "protocol") if k in p}
        for c in spec.get("containers") or [] for p in c.get("ports") or []
    ]
    proxy_config = _proxy_config(settings, annotations)
    probers = rewrite_probes(spec.get("containers") or [])
    env: list[Obj] = [
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "CA_ADDR", "value": "istiod.istio-system.svc:15012"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SERVICE_ACCOUNT",
         "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "PROXY_CONFIG", "value": json.dumps(proxy_config, separators=(",", ":"))},
        {"name": "ISTIO_META_POD_PORTS", "value": json.dumps(pod_ports)},
        {"name": "ISTIO_META_APP_CONTAINERS", "value": ",".join(app_containers)},
        {"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "ISTIO_META_CLUSTER_ID", "value": settings.cluster_id},
        {"name": "ISTIO_META_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
        {"name": "ISTIO_META_WORKLOAD_NAME", "value": workload},
        {"name": "ISTIO_META_OWNER", "value": owner},
        {"name": "ISTIO_META_MESH_ID", "value": settings.mesh_id},
        {"name": "TRUST_DOMAIN", "value": settings.trust_domain},
        {"name": "ISTIO_META_NETWORK", "value": settings.network},
    ]
    if probers:
        env.append({"name": "ISTIO_KUBE_APP_PROBERS",
                    "value": json.dumps(probers, separators=(",", ":"))})
    sidecar = {
        "name": "istio-proxy",
        "image": settings.image,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                 "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error",
                 "--log_output_level=default:info"],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "env": env,
        "startupProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 3,
            "failureThreshold": 600,
        },
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": 15021},
            "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 4,
        },
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "2", "memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                            "readOnlyRootFilesystem": True, "runAsGroup": 1337,
                            "runAsNonRoot": True, "runAsUser": 1337,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": copy.deepcopy(_MOUNTS),
    }
    init = {
        "name": "istio-init",
        "image": settings.image,
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                 "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020",
                 "--log_output_level=default:info"],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "2", "memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "privileged": False,
                            "readOnlyRootFilesystem": False, "runAsGroup": 0,
                            "runAsNonRoot": False, "runAsUser": 0,
                            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
    }
    spec.setdefault("initContainers", []).append(init)
    if native:
        sidecar["restartPolicy"] = "Always"
        sidecar["lifecycle"] = {"preStop": {"exec": {"command": [
            "pilot-agent", "request", "--debug-port=15020", "POST", "drain"]}}}
        spec["initContainers"].append(sidecar)
    else:
        spec.setdefault("containers", []).append(sidecar)
    spec.setdefault("volumes", []).extend(copy.deepcopy(_VOLUMES))
    labels.setdefault("security.istio.io/tlsMode", "istio")
    labels.setdefault("service.istio.io/canonical-name",
                      labels.get("app.kubernetes.io/name") or labels.get("app") or workload)
    labels.setdefault("service.istio.io/canonical-revision",
                      labels.get("app.kubernetes.io/version") or labels.get("version") or "latest")
    first_app = app_containers[0] if app_containers else "istio-proxy"
    annotations.setdefault("kubectl.kubernetes.io/default-container", first_app)
    annotations.setdefault("kubectl.kubernetes.io/default-logs-container", first_app)
    annotations.setdefault("prometheus.io/path", "/stats/prometheus")
    annotations.setdefault("prometheus.io/port", "15020")
    annotations.setdefault("prometheus.io/scrape", "true")
    annotations.setdefault("istio.io/rev", "default")
    annotations["sidecar.istio.io/status"] = json.dumps({
        "initContainers": ["istio-init", "istio-proxy"] if native else ["istio-init"],
        "containers": None if native else ["istio-proxy"],
        "volumes": [v["name"] for v in _VOLUMES],
        "imagePullSecrets": None,
        "revision": "default",
    }, separators=(",", ":"))
    return pod


def review_response(review: Obj, settings: InjectionSettings) -> Obj:
    """The AdmissionReview answer to an injection request (allowed, with a JSONPatch)."""
    request = review.get("request") or {}
    pod = request.get("object") or {}
    namespace = request.get("namespace") or (pod.get("metadata") or {}).get("namespace", "")
    response: Obj = {"uid": request.get("uid", ""), "allowed": True}
    if not skip_reason(pod):
        patch = jsonpatch.make_patch(pod, inject(pod, namespace, settings)).patch
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
            "kind": "AdmissionReview", "response": response}
