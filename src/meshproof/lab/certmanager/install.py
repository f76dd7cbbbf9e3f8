"""``kubectl apply -f cert-manager.yaml`` (v1.21.1) for a lab cluster: the objects the lab needs.

The static manifest also installs the cainjector, the webhook, RBAC, the ACME
CRDs (orders, challenges) and the startupapicheck Job; the lab runs none of
them (no admission webhooks for cert-manager, no RBAC enforcement, no ACME),
so only the CRDs of ``cert-manager.io``, the namespace, the controller's
ServiceAccount, Deployment and metrics Service are rendered. Shapes follow
cert-manager/cert-manager ``deploy/charts/cert-manager/templates/deployment.yaml``
and ``service.yaml`` (the static manifest is that chart rendered with its
defaults: pod annotations ``prometheus.io/{path,scrape,port}`` because no
ServiceMonitor / PodMonitor is enabled, metrics port ``http-metrics`` 9402,
health port ``http-healthz`` 9403 with ``/livez``), and
``crd-cert-manager.io_*.yaml`` (names, short names, category ``cert-manager``).
"""

from __future__ import annotations

from typing import Any

from meshproof.lab.install.crds import crd

__all__ = ["CERT_MANAGER_VERSION", "CONTROLLER_IMAGE", "NAMESPACE", "crds", "render"]

Obj = dict[str, Any]

CERT_MANAGER_VERSION = "v1.21.1"
"""Pinned in ``clusters/versions.env`` (CERT_MANAGER_VERSION)."""
NAMESPACE = "cert-manager"
CONTROLLER_IMAGE = f"quay.io/jetstack/cert-manager-controller:{CERT_MANAGER_VERSION}"

_GROUP = "cert-manager.io"
# (kind, plural, short names, namespaced), as the v1 CRDs declare them.
_KINDS = [
    ("Certificate", "certificates", ["cert", "certs"], True),
    ("CertificateRequest", "certificaterequests", ["cr", "crs"], True),
    ("Issuer", "issuers", ["iss"], True),
    ("ClusterIssuer", "clusterissuers", ["ciss"], False),
]
_READY = '.status.conditions[?(@.type == "Ready")]'
_AGE = {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}
# additionalPrinterColumns of the real CRDs (for `kubectl get`, where the lab's tables use them).
_COLUMNS: dict[str, list[Obj]] = {
    "Certificate": [
        {"jsonPath": f"{_READY}.status", "name": "Ready", "type": "string"},
        {"jsonPath": ".spec.secretName", "name": "Secret", "type": "string"},
        {"jsonPath": ".spec.issuerRef.name", "name": "Issuer", "priority": 1, "type": "string"},
        {"jsonPath": f"{_READY}.message", "name": "Status", "priority": 1, "type": "string"},
        _AGE,
    ],
    "CertificateRequest": [
        {"jsonPath": '.status.conditions[?(@.type == "Approved")].status', "name": "Approved",
         "type": "string"},
        {"jsonPath": '.status.conditions[?(@.type == "Denied")].status', "name": "Denied",
         "type": "string"},
        {"jsonPath": f"{_READY}.status", "name": "Ready", "type": "string"},
        {"jsonPath": ".spec.issuerRef.name", "name": "Issuer", "type": "string"},
        {"jsonPath": ".spec.username", "name": "Requester", "type": "string"},
        {"jsonPath": f"{_READY}.message", "name": "Status", "priority": 1, "type": "string"},
        _AGE,
    ],
    "Issuer": [
        {"jsonPath": f"{_READY}.status", "name": "Ready", "type": "string"},
        {"jsonPath": f"{_READY}.message", "name": "Status", "priority": 1, "type": "string"},
        _AGE,
    ],
}
_COLUMNS["ClusterIssuer"] = _COLUMNS["Issuer"]


def _labels(component: str) -> dict[str, str]:
    return {"app": "cert-manager" if component == "controller" else component,
            "app.kubernetes.io/name": "cert-manager",
            "app.kubernetes.io/instance": "cert-manager",
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/version": CERT_MANAGER_VERSION}


def crds() -> list[Obj]:
    """The four ``cert-manager.io/v1`` CustomResourceDefinitions (status subresource on each)."""
    out = []
    for kind, plural, short, namespaced in _KINDS:
        obj = crd(_GROUP, kind, plural, short, ["v1"], categories=["cert-manager"],
                  scope="Namespaced" if namespaced else "Cluster")
        obj["metadata"]["labels"] = {**_labels("crds"), "app": "cert-manager"}
        obj["spec"]["versions"][0]["additionalPrinterColumns"] = list(_COLUMNS[kind])
        out.append(obj)
    return out


def _controller_deployment() -> Obj:
    labels = _labels("controller")
    selector = {k: labels[k] for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                                       "app.kubernetes.io/component")}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "cert-manager", "namespace": NAMESPACE, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": {"prometheus.io/path": "/metrics",
                                    "prometheus.io/scrape": "true",
                                    "prometheus.io/port": "9402"},
                },
                "spec": {
                    "serviceAccountName": "cert-manager",
                    "enableServiceLinks": False,
                    "securityContext": {"runAsNonRoot": True,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "cert-manager-controller",
                        "image": CONTROLLER_IMAGE,
                        "imagePullPolicy": "IfNotPresent",
                        "args": [
                            "--v=2",
                            "--cluster-resource-namespace=$(POD_NAMESPACE)",
                            "--leader-election-namespace=kube-system",
                            ("--acme-http01-solver-image=quay.io/jetstack/"
                            f"cert-manager-acmesolver:{CERT_MANAGER_VERSION}"),
                            "--max-concurrent-challenges=60",
                        ],
                        "ports": [
                            {"containerPort": 9402, "name": "http-metrics", "protocol": "TCP"},
                            {"containerPort": 9403, "name": "http-healthz", "protocol": "TCP"},
                        ],
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": True},
                        "env": [{"name": "POD_NAMESPACE",
                                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                        "livenessProbe": {
                            "httpGet": {"port": "http-healthz", "path": "/livez",
                                        "scheme": "HTTP"},
                            "initialDelaySeconds": 10, "periodSeconds": 10,
                            "timeoutSeconds": 15, "successThreshold": 1, "failureThreshold": 8,
                        },
                    }],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                },
            },
        },
    }


def render() -> list[Obj]:
    """Every object, in the order ``kubectl apply`` creates them (CRDs and namespace first)."""
    labels = _labels("controller")
    return [
        *crds(),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "automountServiceAccountToken": True,
         "metadata": {"name": "cert-manager", "namespace": NAMESPACE, "labels": dict(labels)}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "cert-manager", "namespace": NAMESPACE, "labels": dict(labels)},
         "spec": {
             "type": "ClusterIP",
             "ports": [{"name": "tcp-prometheus-servicemonitor", "port": 9402,
                        "protocol": "TCP", "targetPort": "http-metrics"}],
             "selector": {k: labels[k] for k in ("app.kubernetes.io/name",
                                                 "app.kubernetes.io/instance",
                                                 "app.kubernetes.io/component")},
         }},
        _controller_deployment(),
    ]
