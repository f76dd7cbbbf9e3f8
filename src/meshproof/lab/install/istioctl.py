"""``istioctl install -f <IstioOperator>`` for a lab cluster: the objects it would create.

Covers what the mesh's IstioOperator files in ``clusters/istio/`` use: the
``default`` profile (istiod + ``istio-ingressgateway``) and ``empty`` (only the
listed components), ``hub`` / ``tag``, ``meshConfig``, ``values.global``
(meshID, multiCluster.clusterName, network), ``components.pilot`` and
``components.ingressGateways`` with their labels, env and Service ports. Object
shapes follow istio/istio ``manifests/charts/istio-control/istio-discovery`` and
``manifests/charts/gateway``.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from meshproof.lab.install.versions import DEFAULT_ISTIO

__all__ = ["render_operator"]

Obj = dict[str, Any]

_INGRESS_PORTS: list[Obj] = [
    {"name": "status-port", "port": 15021, "targetPort": 15021, "protocol": "TCP"},
    {"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"},
    {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
]


def _meta(name: str, labels: dict[str, str], namespace: str = "istio-system") -> Obj:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def _mesh_config(spec: Obj, values: Obj) -> Obj:
    mesh = copy.deepcopy(spec.get("meshConfig") or {})
    g = values.get("global") or {}
    mesh.setdefault("trustDomain", "cluster.local")
    mesh.setdefault("rootNamespace", "istio-system")
    default = mesh.setdefault("defaultConfig", {})
    default.setdefault("discoveryAddress", "istiod.istio-system.svc:15012")
    if g.get("meshID"):
        default.setdefault("meshId", g["meshID"])
    return mesh


def _istiod(spec: Obj, values: Obj, hub: str, tag: str) -> list[Obj]:
    g = values.get("global") or {}
    cluster = (g.get("multiCluster") or {}).get("clusterName", "Kubernetes")
    labels = {"app": "istiod", "istio": "pilot", "istio.io/rev": "default",
              "install.operator.istio.io/owning-resource": "unknown"}
    pilot_k8s = ((spec.get("components") or {}).get("pilot") or {}).get("k8s") or {}
    resources = pilot_k8s.get("resources") or {"requests": {"cpu": "500m", "memory": "2048Mi"}}
    env = [
        {"name": "REVISION", "value": "default"},
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "SERVICE_ACCOUNT",
         "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "CLUSTER_ID", "value": cluster},
        {"name": "PILOT_ENABLE_ANALYSIS", "value": "false"},
        {"name": "ISTIO_PROXY_IMAGE", "value": f"{hub}/proxyv2:{tag}"},
        *(pilot_k8s.get("env") or []),
    ]
    mesh = _mesh_config(spec, values)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _meta("istiod", {"app": "istiod"})},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": _meta("istio-reader-service-account", {"app": "istio-reader"})},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": _meta("istio", {"istio.io/rev": "default", "release": "istio"}),
         "data": {"mesh": yaml.safe_dump(mesh, sort_keys=False),
                  "meshNetworks": "networks: {}\n"}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": _meta("istiod", labels),
         "spec": {
             "replicas": 1,
             "selector": {"matchLabels": {"istio": "pilot"}},
             "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
             "template": {
                 "metadata": {"labels": dict(labels, **{"sidecar.istio.io/inject": "false"}),
                              "annotations": {"prometheus.io/port": "15014",
                                              "prometheus.io/scrape": "true",
                                              "sidecar.istio.io/inject": "false"}},
                 "spec": {
                     "serviceAccountName": "istiod",
                     "containers": [{
                         "name": "discovery",
                         "image": f"{hub}/pilot:{tag}",
                         "args": ["discovery", "--monitoringAddr=:15014",
                                  "--log_output_level=default:info", "--domain",
                                  "cluster.local", "--keepaliveMaxServerConnectionAge", "30m"],
                         "ports": [{"containerPort": 8080, "protocol": "TCP"},
                                   {"containerPort": 15010, "protocol": "TCP"},
                                   {"containerPort": 15012, "protocol": "TCP"},
                                   {"containerPort": 15017, "protocol": "TCP"}],
                         "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080},
                                            "initialDelaySeconds": 1, "periodSeconds": 3,
                                            "timeoutSeconds": 5},
                         "env": env,
                         "resources": resources,
                         "volumeMounts": [
                             {"name": "istio-token", "mountPath": "/var/run/secrets/tokens",
                              "readOnly": True},
                             {"name": "cacerts", "mountPath": "/etc/cacerts",
                              "readOnly": True},
                         ],
                     }],
                     "volumes": [
                         {"name": "istio-token", "projected": {"sources": [
                             {"serviceAccountToken": {"audience": "istio-ca",
                                                      "expirationSeconds": 43200,
                                                      "path": "istio-token"}}]}},
                         {"name": "cacerts", "secret": {"secretName": "cacerts",
                                                        "optional": True}},
                     ],
                 },
             },
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta("istiod", {"app": "istiod", "istio": "pilot",
                                      "istio.io/rev": "default"}),
         "spec": {"selector": {"app": "istiod", "istio": "pilot"}, "ports": [
             {"name": "grpc-xds", "port": 15010, "protocol": "TCP", "targetPort": 15010},
             {"name": "https-dns", "port": 15012, "protocol": "TCP", "targetPort": 15012},
             {"name": "https-webhook", "port": 443, "protocol": "TCP", "targetPort": 15017},
             {"name": "http-monitoring", "port": 15014, "protocol": "TCP",
              "targetPort": 15014},
         ]}},
        _injector_webhook(),
    ]


def _injector_webhook() -> Obj:
    # The four selectors of Istio's default revision webhook (istio-discovery chart,
    # templates/mutatingwebhook.yaml); the caBundle is filled in by istiod.
    client = {"service": {"name": "istiod", "namespace": "istio-system", "path": "/inject",
                          "port": 443}}
    rules = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
              "resources": ["pods"]}]
    common = {"clientConfig": client, "rules": rules, "failurePolicy": "Fail",
              "sideEffects": "None", "reinvocationPolicy": "Never",
              "admissionReviewVersions": ["v1"]}

    def expr(key: str, op: str, *values: str) -> Obj:
        return {"key": key, "operator": op, **({"values": list(values)} if values else {})}

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "istio-sidecar-injector",
                     "labels": {"app": "sidecar-injector", "istio.io/rev": "default"}},
        "webhooks": [
            {"name": "rev.namespace.sidecar-injector.istio.io", **common,
             "namespaceSelector": {"matchExpressions": [
                 expr("istio.io/rev", "In", "default"), expr("istio-injection", "DoesNotExist")]},
             "objectSelector": {"matchExpressions": [
                 expr("sidecar.istio.io/inject", "NotIn", "false")]}},
            {"name": "rev.object.sidecar-injector.istio.io", **common,
             "namespaceSelector": {"matchExpressions": [
                 expr("istio.io/rev", "DoesNotExist"), expr("istio-injection", "DoesNotExist")]},
             "objectSelector": {"matchExpressions": [
                 expr("sidecar.istio.io/inject", "NotIn", "false"),
                 expr("istio.io/rev", "In", "default")]}},
            {"name": "namespace.sidecar-injector.istio.io", **common,
             "namespaceSelector": {"matchExpressions": [
                 expr("istio-injection", "In", "enabled")]},
             "objectSelector": {"matchExpressions": [
                 expr("sidecar.istio.io/inject", "NotIn", "false")]}},
            {"name": "object.sidecar-injector.istio.io", **common,
             "namespaceSelector": {"matchExpressions": [
                 expr("istio-injection", "DoesNotExist"), expr("istio.io/rev", "DoesNotExist")]},
             "objectSelector": {"matchExpressions": [
                 expr("sidecar.istio.io/inject", "In", "true"),
                 expr("istio.io/rev", "DoesNotExist")]}},
        ],
    }


def _gateway(component: Obj, values: Obj, hub: str, tag: str) -> list[Obj]:
    name = component["name"]
    g = values.get("global") or {}
    cluster = (g.get("multiCluster") or {}).get("clusterName", "Kubernetes")
    labels = dict(component.get("label") or {"app": name, "istio": "ingressgateway"})
    k8s = component.get("k8s") or {}
    ports = (k8s.get("service") or {}).get("ports") or _INGRESS_PORTS
    container_ports = sorted({int(p.get("targetPort", p["port"])) for p in ports} | {15090})
    env = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SERVICE_ACCOUNT",
         "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "ISTIO_META_WORKLOAD_NAME", "value": name},
        {"name": "ISTIO_META_CLUSTER_ID", "value": cluster},
        {"name": "ISTIO_META_NETWORK", "value": g.get("network", "")},
        {"name": "ISTIO_META_MESH_ID", "value": g.get("meshID", "")},
        *(k8s.get("env") or []),
    ]
    sa = f"{name}-service-account"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(sa, labels)},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": _meta(name, labels),
         "spec": {
             "replicas": 1,
             "selector": {"matchLabels": labels},
             "template": {
                 "metadata": {"labels": dict(labels, **{
                     "sidecar.istio.io/inject": "false",
                     "service.istio.io/canonical-name": name,
                     "service.istio.io/canonical-revision": "latest"}),
                     "annotations": {"prometheus.io/path": "/stats/prometheus",
                                     "prometheus.io/port": "15020",
                                     "prometheus.io/scrape": "true",
                                     "sidecar.istio.io/inject": "false"}},
                 "spec": {
                     "serviceAccountName": sa,
                     "containers": [{
                         "name": "istio-proxy",
                         "image": f"{hub}/proxyv2:{tag}",
                         "args": ["proxy", "router", "--domain",
                                  "$(POD_NAMESPACE).svc.cluster.local",
                                  "--proxyLogLevel=warning",
                                  "--proxyComponentLogLevel=misc:error",
                                  "--log_output_level=default:info"],
                         "ports": [{"containerPort": p, "protocol": "TCP"}
                                   for p in container_ports],
                         "readinessProbe": {"httpGet": {"path": "/healthz/ready",
                                                        "port": 15021},
                                            "periodSeconds": 2, "failureThreshold": 30,
                                            "timeoutSeconds": 1},
                         "env": env,
                         "resources": k8s.get("resources") or {
                             "requests": {"cpu": "100m", "memory": "128Mi"}},
                         "volumeMounts": [
                             {"name": "istio-token", "mountPath": "/var/run/secrets/tokens",
                              "readOnly": True},
                             {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio"},
                         ],
                     }],
                     "volumes": [
                         {"name": "istio-token", "projected": {"sources": [
                             {"serviceAccountToken": {"audience": "istio-ca",
                                                      "expirationSeconds": 43200,
                                                      "path": "istio-token"}}]}},
                         {"name": "istiod-ca-cert",
                          "configMap": {"name": "istio-ca-root-cert"}},
                     ],
                 },
             },
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": _meta(name, labels),
         "spec": {"type": "LoadBalancer", "selector": labels,
                  "ports": [{"protocol": "TCP", **p} for p in ports]}},
    ]


def render_operator(operator: Obj, *, tag: str | None = None) -> list[Obj]:
    """The objects ``istioctl install -f`` would create for ``operator`` (an IstioOperator);
    ``tag`` overrides the file's, as ``istioctl install --set tag=...`` does."""
    spec = operator.get("spec") or {}
    values = spec.get("values") or {}
    hub = spec.get("hub", "docker.io/istio")
    tag = tag or str(spec.get("tag", DEFAULT_ISTIO))
    profile = spec.get("profile", "default")
    components = spec.get("components") or {}
    objects: list[Obj] = []
    pilot = components.get("pilot") or {}
    if pilot.get("enabled", profile != "empty"):
        objects += _istiod(spec, values, hub, tag)
    gateways = list(components.get("ingressGateways") or [])
    if profile != "empty" and not any(g.get("name") == "istio-ingressgateway"
                                      for g in gateways):
        gateways.append({"name": "istio-ingressgateway", "enabled": True})
    for gateway in gateways:
        if gateway.get("enabled", True):
            objects += _gateway(gateway, values, hub, tag)
    return objects
