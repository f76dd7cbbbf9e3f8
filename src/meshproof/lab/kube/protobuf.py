"""Reading the Kubernetes protobuf encoding, for the kinds kubectl's typed clients write.

kubectl sends ``application/vnd.kubernetes.protobuf`` bodies when it builds an
object itself (``kubectl create namespace|configmap|secret|deployment|service|job``,
``kubectl run``, ``kubectl expose``, the evictions of ``kubectl drain``). The
wire form is the magic ``k8s\\0`` and a ``runtime.Unknown`` (typeMeta, raw);
``raw`` is the object's message. Field numbers follow kubernetes/api
``core/v1``, ``apps/v1``, ``batch/v1``, ``policy/v1`` and apimachinery
``meta/v1`` ``generated.proto``; fields outside this table are skipped.

Go marshals non-pointer fields even when empty; JSON would omit them, so
empty values are dropped (except where zero is meaningful, e.g. ``replicas``),
which lets the server's defaulting fill them as it does for JSON.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from meshproof.lab.kube.apierrors import BadRequest, UnsupportedMediaType

__all__ = ["PROTOBUF", "decode_object"]

PROTOBUF = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

Obj = dict[str, Any]
# field number -> (json name, type, repeated); a type is a scalar name, a message name,
# "map" / "map:bytes" / "map:Quantity", or "inline:<Message>" (an embedded Go struct).
Field = tuple[str, str, bool]
_S, _I, _B, _BY = "string", "int", "bool", "bytes"


def _f(name: str, type_: str = _S, repeated: bool = False) -> Field:
    return (name, type_, repeated)


_SCHEMA: dict[str, dict[int, Field]] = {
    "Unknown": {1: _f("typeMeta", "TypeMeta"), 2: _f("raw", _BY),
                3: _f("contentEncoding"), 4: _f("contentType")},
    "TypeMeta": {1: _f("apiVersion"), 2: _f("kind")},
    "ObjectMeta": {1: _f("name"), 2: _f("generateName"), 3: _f("namespace"),
                   5: _f("uid"), 6: _f("resourceVersion"), 7: _f("generation", _I),
                   10: _f("deletionGracePeriodSeconds", _I), 11: _f("labels", "map"),
                   12: _f("annotations", "map"),
                   13: _f("ownerReferences", "OwnerReference", True),
                   14: _f("finalizers", _S, True)},
    "OwnerReference": {1: _f("kind"), 3: _f("name"), 4: _f("uid"), 5: _f("apiVersion"),
                       6: _f("controller", _B), 7: _f("blockOwnerDeletion", _B)},
    "LabelSelector": {1: _f("matchLabels", "map"),
                      2: _f("matchExpressions", "LabelSelectorRequirement", True)},
    "LabelSelectorRequirement": {1: _f("key"), 2: _f("operator"), 3: _f("values", _S, True)},
    "LocalObjectReference": {1: _f("name")},
    "Namespace": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: _f("finalizers", _S, True)},
    "ConfigMap": {1: _f("metadata", "ObjectMeta"), 2: _f("data", "map"),
                  3: _f("binaryData", "map:bytes"), 4: _f("immutable", _B)},
    "Secret": {1: _f("metadata", "ObjectMeta"), 2: _f("data", "map:bytes"), 3: _f("type"),
               4: _f("stringData", "map"), 5: _f("immutable", _B)},
    "ServiceAccount": {1: _f("metadata", "ObjectMeta"),
                       3: _f("imagePullSecrets", "LocalObjectReference", True),
                       4: _f("automountServiceAccountToken", _B)},
    "Service": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "ServiceSpec")},
    "ServiceSpec": {1: _f("ports", "ServicePort", True), 2: _f("selector", "map"),
                    3: _f("clusterIP"), 4: _f("type"), 5: _f("externalIPs", _S, True),
                    7: _f("sessionAffinity"), 8: _f("loadBalancerIP"),
                    10: _f("externalName"), 11: _f("externalTrafficPolicy"),
                    13: _f("publishNotReadyAddresses", _B), 17: _f("ipFamilyPolicy"),
                    18: _f("clusterIPs", _S, True), 19: _f("ipFamilies", _S, True),
                    21: _f("loadBalancerClass"), 22: _f("internalTrafficPolicy")},
    "ServicePort": {1: _f("name"), 2: _f("protocol"), 3: _f("port", _I),
                    4: _f("targetPort", "IntOrString"), 5: _f("nodePort", _I),
                    6: _f("appProtocol")},
    "Pod": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "PodSpec")},
    "PodTemplateSpec": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "PodSpec")},
    "PodSpec": {2: _f("containers", "Container", True), 3: _f("restartPolicy"),
                4: _f("terminationGracePeriodSeconds", _I),
                5: _f("activeDeadlineSeconds", _I), 6: _f("dnsPolicy"),
                7: _f("nodeSelector", "map"), 8: _f("serviceAccountName"),
                9: _f("serviceAccount"), 10: _f("nodeName"), 11: _f("hostNetwork", _B),
                15: _f("imagePullSecrets", "LocalObjectReference", True),
                16: _f("hostname"), 17: _f("subdomain"), 19: _f("schedulerName"),
                20: _f("initContainers", "Container", True),
                21: _f("automountServiceAccountToken", _B), 24: _f("priorityClassName"),
                30: _f("enableServiceLinks", _B)},
    "Container": {1: _f("name"), 2: _f("image"), 3: _f("command", _S, True),
                  4: _f("args", _S, True), 5: _f("workingDir"),
                  6: _f("ports", "ContainerPort", True), 7: _f("env", "EnvVar", True),
                  8: _f("resources", "ResourceRequirements"), 13: _f("terminationMessagePath"),
                  14: _f("imagePullPolicy"), 16: _f("stdin", _B), 17: _f("stdinOnce", _B),
                  18: _f("tty", _B), 20: _f("terminationMessagePolicy")},
    "ContainerPort": {1: _f("name"), 2: _f("hostPort", _I), 3: _f("containerPort", _I),
                      4: _f("protocol"), 5: _f("hostIP")},
    "EnvVar": {1: _f("name"), 2: _f("value"), 3: _f("valueFrom", "EnvVarSource")},
    "EnvVarSource": {1: _f("fieldRef", "ObjectFieldSelector"),
                     3: _f("configMapKeyRef", "KeySelector"),
                     4: _f("secretKeyRef", "KeySelector")},
    "ObjectFieldSelector": {1: _f("apiVersion"), 2: _f("fieldPath")},
    "KeySelector": {1: _f("", "inline:LocalObjectReference"), 2: _f("key"),
                    3: _f("optional", _B)},
    "ResourceRequirements": {1: _f("limits", "map:Quantity"), 2: _f("requests", "map:Quantity")},
    "Deployment": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "DeploymentSpec")},
    "DeploymentSpec": {1: _f("replicas", "int!"), 2: _f("selector", "LabelSelector"),
                       3: _f("template", "PodTemplateSpec"),
                       4: _f("strategy", "DeploymentStrategy"), 5: _f("minReadySeconds", _I),
                       6: _f("revisionHistoryLimit", _I), 7: _f("paused", _B),
                       9: _f("progressDeadlineSeconds", _I)},
    "DeploymentStrategy": {1: _f("type"), 2: _f("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: _f("maxUnavailable", "IntOrString"),
                                2: _f("maxSurge", "IntOrString")},
    "Job": {1: _f("metadata", "ObjectMeta"), 2: _f("spec", "JobSpec")},
    "JobSpec": {1: _f("parallelism", "int!"), 2: _f("completions", "int!"),
                3: _f("activeDeadlineSeconds", _I), 4: _f("selector", "LabelSelector"),
                5: _f("manualSelector", _B), 6: _f("template", "PodTemplateSpec"),
                7: _f("backoffLimit", "int!"), 8: _f("ttlSecondsAfterFinished", "int!"),
                9: _f("completionMode"), 10: _f("suspend", _B)},
    "Eviction": {1: _f("metadata", "ObjectMeta"), 2: _f("deleteOptions", "DeleteOptions")},
    "DeleteOptions": {1: _f("gracePeriodSeconds", "int!"), 4: _f("propagationPolicy"),
                      5: _f("dryRun", _S, True)},
    "IntOrString": {1: _f("type", _I), 2: _f("intVal", _I), 3: _f("strVal")},
    "Quantity": {1: _f("string")},
}
_KINDS = {"Namespace", "ConfigMap", "Secret", "ServiceAccount", "Service", "Pod",
          "Deployment", "Job", "Eviction"}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise BadRequest("truncated protobuf varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value): ints for varints, bytes for length-delimited."""
    out, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise BadRequest(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(type_: str, value: Any) -> Any:
    if type_ in (_I, "int!"):
        return _signed(value)
    if type_ == _B:
        return bool(value)
    if type_ == _BY:
        return base64.b64encode(value).decode()
    return bytes(value).decode("utf-8")


def _map(raw: bytes, type_: str) -> tuple[str, Any]:
    entry = {n: v for n, _, v in _fields(raw)}
    key = bytes(entry.get(1, b"")).decode()
    value = entry.get(2, b"")
    if type_ == "map:bytes":
        return key, base64.b64encode(value).decode()
    if type_ == "map:Quantity":
        return key, _message("Quantity", value).get("string", "")
    return key, bytes(value).decode()


def _empty(value: Any) -> bool:
    return value in ("", 0, False, None) or value == {} or value == []


def _message(name: str, raw: bytes) -> Any:
    if name == "Time":
        seconds = next((_signed(v) for n, _, v in _fields(raw) if n == 1), 0)
        if seconds <= 0:
            return None
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    schema = _SCHEMA[name]
    out: Obj = {}
    for number, _, value in _fields(raw):
        field = schema.get(number)
        if field is None:
            continue  # outside the table: the server's defaulting takes over
        json_name, type_, repeated = field
        if type_.startswith("map"):
            key, item = _map(value, type_)
            out.setdefault(json_name, {})[key] = item
            continue
        if type_.startswith("inline:"):
            out.update(_message(type_.split(":", 1)[1], value))
            continue
        if type_ in _SCHEMA or type_ == "Time":
            decoded = _message(type_, value)
        else:
            decoded = _scalar(type_, value)
        if repeated:
            out.setdefault(json_name, []).append(decoded)
        elif type_ == "int!" or not _empty(decoded):
            out[json_name] = decoded
    if name == "IntOrString":
        return out.get("strVal", "") if out.get("type") == 1 else out.get("intVal", 0)
    return {k: v for k, v in out.items() if not _empty(v) or schema_keeps_zero(schema, k)}


def schema_keeps_zero(schema: dict[int, Field], json_name: str) -> bool:
    return any(f[0] == json_name and f[1] == "int!" for f in schema.values())


def decode_object(body: bytes) -> Obj:
    """A JSON-shaped object from a Kubernetes protobuf request body."""
    if not body.startswith(_MAGIC):
        raise BadRequest("protobuf body without the Kubernetes magic prefix")
    unknown = {n: v for n, _, v in _fields(body[len(_MAGIC):])}
    type_meta = _message("TypeMeta", unknown.get(1, b""))
    kind = type_meta.get("kind", "")
    if kind not in _KINDS:
        raise UnsupportedMediaType(
            f"the lab API server reads protobuf bodies of {', '.join(sorted(_KINDS))} only, "
            f"not {kind or 'an unnamed kind'}; send JSON (e.g. kubectl apply -f)")
    obj: Obj = {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind}
    obj.update(_message(kind, unknown.get(2, b"")))
    return obj
