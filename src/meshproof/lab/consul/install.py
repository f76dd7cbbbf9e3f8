"""``helm install consul hashicorp/consul -f clusters/consul/values.yaml`` for a lab cluster.

The objects the chart (consul-k8s ``charts/consul``, 1.9.x) creates that the lab
needs, shaped as its templates render them: ``server-serviceaccount.yaml``,
``server-config-configmap.yaml``, ``server-statefulset.yaml``,
``server-service.yaml`` (headless, ``publishNotReadyAddresses``),
``sync-catalog-serviceaccount.yaml`` / ``-clusterrole.yaml`` /
``-clusterrolebinding.yaml`` / ``-deployment.yaml`` and ``ui-service.yaml`` when the
UI is on. Labels are the chart's (``app``, ``chart: consul-helm``, ``heritage: Helm``,
``release``, ``component``).

Left out, because nothing in the lab reads them: the ``consul-dns`` Service (the
lab has no cluster DNS), PodDisruptionBudgets, PodSecurityPolicies, the extra-config
copy step of the server's start script. One change from the chart: the server's
readiness probe curls ``${POD_IP}`` instead of ``127.0.0.1``, because a lab pod has
no loopback of its own (its listeners are on its pod IP).

Datacenters: one per cluster, named after it (``datacenter_layout="per-cluster"``,
what ``clusters/scripts/consul.sh`` does with ``--set global.datacenter=<cluster>``);
``"values"`` keeps ``global.datacenter`` from the values file. See README.md.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any, Literal

__all__ = ["RELEASE", "DatacenterLayout", "render"]

Obj = dict[str, Any]
DatacenterLayout = Literal["per-cluster", "values"]
RELEASE = "consul"
NAMESPACE = "consul"
DEFAULT_IMAGE = "hashicorp/consul:1.22.7"
DEFAULT_IMAGE_K8S = "hashicorp/consul-k8s-control-plane:1.9.11"
_DEFAULT_DENY = ["kube-system", "kube-public"]
# The chart's probe, with the pod's address for 127.0.0.1 (see the module docstring).
_READINESS = "curl http://${POD_IP}:8500/v1/status/leader \\\n2>/dev/null | grep -E '\".+\"'\n"


def _get(values: Obj, path: str, default: Any) -> Any:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return default if node is None else node


def _enabled(values: Obj, path: str, default: bool) -> bool:
    """A chart toggle: ``"-"`` (or absent) inherits ``global.enabled``."""
    value = _get(values, path, "-")
    if value == "-":
        return bool(_get(values, "global.enabled", True)) and default
    return bool(value)


def _labels(full: str, component: str) -> dict[str, str]:
    return {"app": full, "chart": "consul-helm", "heritage": "Helm", "release": RELEASE,
            "component": component}


def _meta(name: str, labels: dict[str, str], namespace: str | None = NAMESPACE) -> Obj:
    meta: Obj = {"name": name, "labels": dict(labels)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _server_config(values: Obj, full: str, datacenter: str) -> Obj:
    replicas = int(_get(values, "server.replicas", 1))
    server_json = {
        "bind_addr": "0.0.0.0",
        "bootstrap_expect": int(_get(values, "server.bootstrapExpect", replicas)),
        "client_addr": "0.0.0.0",
        "connect": {"enabled": bool(_get(values, "server.connect", True))},
        "datacenter": datacenter,
        "data_dir": "/consul/data",
        "enable_debug": False,
        "domain": _get(values, "global.domain", "consul"),
        "ports": {"grpc": 8502, "grpc_tls": -1, "serf_lan": 8301},
        "recursors": list(_get(values, "global.recursors", [])),
        "retry_join": [f"{full}-server.{NAMESPACE}.svc:8301"],
        "server": True,
        "leave_on_terminate": True,
        "autopilot": {"min_quorum": replicas // 2 + 1, "disable_upgrade_migration": True},
    }
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(f"{full}-server-config", _labels(full, "server")),
            "data": {"server.json": json.dumps(server_json, indent=2) + "\n",
                     "central-config.json": json.dumps(
                         {"enable_central_service_config": True}, indent=2)}}


def _server_script(values: Obj, full: str, datacenter: str) -> str:
    replicas = int(_get(values, "server.replicas", 1))
    expect = int(_get(values, "server.bootstrapExpect", replicas))
    lines = [f'CONSUL_FULLNAME="{full}"', "",
             "exec /usr/local/bin/docker-entrypoint.sh consul agent \\",
             '  -advertise="${ADVERTISE_IP}" \\', "  -bind=0.0.0.0 \\",
             f"  -bootstrap-expect={expect} \\", "  -client=0.0.0.0 \\",
             "  -config-dir=/consul/config \\", f"  -datacenter={datacenter} \\",
             "  -data-dir=/consul/data \\",
             f"  -domain={_get(values, 'global.domain', 'consul')} \\"]
    if _enabled(values, "ui.enabled", True):
        lines.append("  -ui \\")
    lines += [f'  -retry-join="${{CONSUL_FULLNAME}}-server-{i}.${{CONSUL_FULLNAME}}-server.'
              f'${{NAMESPACE}}.svc:8301" \\' for i in range(replicas)]
    lines += ["  -serf-lan-port=8301 \\", "  -server"]
    return "\n".join(lines) + "\n"


def _statefulset(values: Obj, full: str, datacenter: str, config_checksum: str) -> Obj:
    labels = _labels(full, "server")
    pod_labels = dict(labels, hasDNS="true")
    selector = {k: pod_labels[k] for k in ("app", "chart", "release", "component", "hasDNS")}
    image = _get(values, "server.image", None) or _get(values, "global.image", DEFAULT_IMAGE)

    def field_env(name: str, path: str) -> Obj:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    ports = [{"name": "http", "containerPort": 8500},
             {"name": "grpc", "containerPort": 8502, "protocol": "TCP"},
             {"name": "serflan-tcp", "containerPort": 8301, "protocol": "TCP"},
             {"name": "serflan-udp", "containerPort": 8301, "protocol": "UDP"},
             {"name": "serfwan-tcp", "containerPort": 8302, "protocol": "TCP"},
             {"name": "serfwan-udp", "containerPort": 8302, "protocol": "UDP"},
             {"name": "server", "containerPort": 8300},
             {"name": "dns-tcp", "containerPort": 8600, "protocol": "TCP"},
             {"name": "dns-udp", "containerPort": 8600, "protocol": "UDP"}]
    container: Obj = {
        "name": "consul", "image": image,
        "env": [field_env("ADVERTISE_IP", "status.podIP"), field_env("HOST_IP", "status.hostIP"),
                field_env("POD_IP", "status.podIP"),
                field_env("NAMESPACE", "metadata.namespace"),
                {"name": "CONSUL_DISABLE_PERM_MGMT", "value": "true"}],
        "command": ["/bin/sh", "-ec", _server_script(values, full, datacenter)],
        "volumeMounts": [{"name": f"data-{NAMESPACE}", "mountPath": "/consul/data"},
                         {"name": "config", "mountPath": "/consul/config"}],
        "ports": ports,
        "readinessProbe": {
            "exec": {"command": ["/bin/sh", "-ec", _READINESS]},
            "failureThreshold": 2, "initialDelaySeconds": 5, "periodSeconds": 3,
            "successThreshold": 1, "timeoutSeconds": 5},
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                            "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    resources = _get(values, "server.resources", None)
    if resources:
        container["resources"] = copy.deepcopy(resources)
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": _meta(f"{full}-server", labels),
        "spec": {
            "serviceName": f"{full}-server",
            "podManagementPolicy": "Parallel",
            "replicas": int(_get(values, "server.replicas", 1)),
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": {
                    "consul.hashicorp.com/connect-inject": "false",
                    "consul.hashicorp.com/config-checksum": config_checksum}},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "serviceAccountName": f"{full}-server",
                    "securityContext": {"fsGroup": 1000, "runAsGroup": 1000,
                                        "runAsNonRoot": True, "runAsUser": 100},
                    "volumes": [{"name": "config",
                                 "configMap": {"name": f"{full}-server-config"}}],
                    "containers": [container],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": f"data-{NAMESPACE}"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {
                    "storage": str(_get(values, "server.storage", "10Gi"))}}},
            }],
        },
    }


def _server_service(full: str) -> Obj:
    ports = [{"name": "http", "port": 8500, "targetPort": 8500},
             {"name": "grpc", "port": 8502, "targetPort": 8502},
             {"name": "serflan-tcp", "protocol": "TCP", "port": 8301, "targetPort": 8301},
             {"name": "serflan-udp", "protocol": "UDP", "port": 8301, "targetPort": 8301},
             {"name": "serfwan-tcp", "protocol": "TCP", "port": 8302, "targetPort": 8302},
             {"name": "serfwan-udp", "protocol": "UDP", "port": 8302, "targetPort": 8302},
             {"name": "server", "port": 8300, "targetPort": 8300},
             {"name": "dns-tcp", "protocol": "TCP", "port": 8600, "targetPort": "dns-tcp"},
             {"name": "dns-udp", "protocol": "UDP", "port": 8600, "targetPort": "dns-udp"}]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(f"{full}-server", _labels(full, "server")),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True, "ports": ports,
                     "selector": {"app": full, "release": RELEASE, "component": "server"}}}


def _ui_service(full: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(f"{full}-ui", _labels(full, "ui")),
            "spec": {"selector": {"app": full, "release": RELEASE, "component": "server"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8500}]}}


def _sync_args(values: Obj) -> str:
    s = _get(values, "syncCatalog", {})
    lines = ["consul-k8s-control-plane sync-catalog \\",
             f"  -log-level={s.get('logLevel') or _get(values, 'global.logLevel', 'info')} \\",
             f"  -log-json={str(_get(values, 'global.logJSON', False)).lower()} \\",
             f"  -k8s-default-sync={str(s.get('default', True)).lower()} \\"]
    if not s.get("toConsul", True):
        lines.append("  -to-consul=false \\")
    if not s.get("toK8S", True):
        lines.append("  -to-k8s=false \\")
    lines.append(f"  -consul-domain={_get(values, 'global.domain', 'consul')} \\")
    if s.get("k8sPrefix"):
        lines.append(f'  -k8s-service-prefix="{s["k8sPrefix"]}" \\')
    for ns in s.get("k8sAllowNamespaces", ["*"]):
        lines.append(f'  -allow-k8s-namespace="{ns}" \\')
    for ns in s.get("k8sDenyNamespaces", _DEFAULT_DENY):
        lines.append(f'  -deny-k8s-namespace="{ns}" \\')
    lines.append("  -k8s-write-namespace=${NAMESPACE} \\")
    if not s.get("syncClusterIPServices", True):
        lines.append("  -sync-clusterip-services=false \\")
    lines.append(f"  -node-port-sync-type={s.get('nodePortSyncType', 'ExternalFirst')} \\")
    if s.get("consulWriteInterval"):
        lines.append(f"  -consul-write-interval={s['consulWriteInterval']} \\")
    if s.get("k8sTag"):
        lines.append(f"  -consul-k8s-tag={s['k8sTag']} \\")
    lines.append(f"  -consul-node-name={s.get('consulNodeName', 'k8s-sync')} \\")
    if s.get("consulPrefix"):
        lines.append(f'  -consul-service-prefix="{s["consulPrefix"]}" \\')
    if s.get("addK8SNamespaceSuffix", True):
        lines.append("  -add-k8s-namespace-suffix \\")
    lines[-1] = lines[-1].removesuffix(" \\")
    return "\n".join(lines) + "\n"


def _sync_catalog(values: Obj, full: str, datacenter: str) -> list[Obj]:
    labels = _labels(full, "sync-catalog")
    selector = {k: labels[k] for k in ("app", "chart", "release", "component")}
    image = _get(values, "syncCatalog.image", None) or _get(values, "global.imageK8S",
                                                             DEFAULT_IMAGE_K8S)
    probe = {"httpGet": {"path": "/health/ready", "port": 8080, "scheme": "HTTP"},
             "periodSeconds": 5, "successThreshold": 1, "timeoutSeconds": 5}
    container: Obj = {
        "name": "sync-catalog", "image": image,
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                            "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "env": [{"name": "CONSUL_ADDRESSES", "value": f"{full}-server.{NAMESPACE}.svc"},
                {"name": "CONSUL_GRPC_PORT", "value": "8502"},
                {"name": "CONSUL_HTTP_PORT", "value": "8500"},
                {"name": "CONSUL_DATACENTER", "value": datacenter},
                {"name": "CONSUL_API_TIMEOUT",
                 "value": str(_get(values, "global.consulAPITimeout", "5s"))},
                {"name": "NAMESPACE",
                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "command": ["/bin/sh", "-ec", _sync_args(values)],
        "livenessProbe": dict(probe, failureThreshold=3, initialDelaySeconds=30),
        "readinessProbe": dict(probe, failureThreshold=5, initialDelaySeconds=10),
    }
    resources = _get(values, "syncCatalog.resources", None)
    if resources:
        container["resources"] = copy.deepcopy(resources)
    name = f"{full}-sync-catalog"
    rules = [{"apiGroups": [""], "resources": ["services", "endpoints"],
              "verbs": ["get", "list", "watch"]},
             {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["get", "list", "watch"]},
             {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, labels)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta(name, labels, None), "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": _meta(name, labels, None),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, labels),
         "spec": {"replicas": 1, "selector": {"matchLabels": selector},
                  "template": {"metadata": {"labels": dict(selector), "annotations": {
                      "consul.hashicorp.com/connect-inject": "false"}},
                      "spec": {"serviceAccountName": name, "containers": [container]}}}},
    ]


def render(values: Obj, *, cluster: str,
           datacenter_layout: DatacenterLayout = "per-cluster") -> list[Obj]:
    """The objects ``helm install consul`` creates in ``cluster`` from ``values``, in apply order.

    ``values`` is the parsed values file (``clusters/consul/values.yaml``).
    """
    if datacenter_layout not in ("per-cluster", "values"):
        raise ValueError(f"consul install for cluster {cluster}: unknown datacenter layout "
                         f"{datacenter_layout!r} (per-cluster or values)")
    full = str(_get(values, "global.name", "") or f"{RELEASE}-consul")
    datacenter = cluster if datacenter_layout == "per-cluster" else str(
        _get(values, "global.datacenter", "dc1"))
    objects: list[Obj] = [{"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": NAMESPACE}}]
    if _enabled(values, "server.enabled", True):
        config = _server_config(values, full, datacenter)
        checksum = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
        objects += [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": _meta(f"{full}-server", _labels(full, "server"))},
            config,
            _server_service(full),
        ]
        if _enabled(values, "ui.enabled", True) and _get(values, "ui.service.enabled", True):
            objects.append(_ui_service(full))
        objects.append(_statefulset(values, full, datacenter, checksum))
    if _get(values, "syncCatalog.enabled", False) in (True, "true") or (
            _get(values, "syncCatalog.enabled", False) == "-" and
            _get(values, "global.enabled", True)):
        objects += _sync_catalog(values, full, datacenter)
    return objects
