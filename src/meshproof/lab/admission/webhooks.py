"""Calls the mutating admission webhooks registered in a lab cluster, over real TLS.

The API server reads every ``admissionregistration.k8s.io/v1``
MutatingWebhookConfiguration, and for each webhook whose rules, namespace
selector and object selector match the request it POSTs an ``AdmissionReview``
(v1) to the webhook's service (through its Endpoints, verifying the serving
certificate against ``caBundle`` for ``<service>.<namespace>.svc``) and applies
the JSONPatch it answers. ``failurePolicy: Fail`` (the default) refuses the
object when the webhook cannot be reached; ``Ignore`` admits it unchanged.
Shapes: kubernetes/api ``admission/v1/types.go`` and
``admissionregistration/v1/types.go``.
"""

from __future__ import annotations

import base64
import copy
import json
import ssl
import uuid
from typing import Any

import aiohttp
import jsonpatch

from meshproof.lab.kube.apierrors import Forbidden
from meshproof.lab.kube.interfaces import NotFound, ObjectStore, ResourceKind, StoreError
from meshproof.lab.kube.selectors import parse_label_selector

__all__ = ["WebhookAdmission", "WebhookCallFailed", "selector_matches"]

Obj = dict[str, Any]
_MWC = ResourceKind("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                    "MutatingWebhookConfiguration", namespaced=False)
_NAMESPACE = ResourceKind("", "v1", "namespaces", "Namespace", namespaced=False)
_SERVICE = ResourceKind("", "v1", "services", "Service")
_ENDPOINTS = ResourceKind("", "v1", "endpoints", "Endpoints")


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels + matchExpressions) against labels; empty matches all."""
    if not selector:
        return True
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return parse_label_selector(",".join(parts)).matches(labels)


def _rule_matches(rule: Obj, res: ResourceKind, operation: str) -> bool:
    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    return (
        has(rule.get("operations") or [], operation)
        and has(rule.get("apiGroups") or [], res.group)
        and has(rule.get("apiVersions") or [], res.version)
        and has(rule.get("resources") or [], res.plural)
    )


class WebhookCallFailed(StoreError):
    """A webhook could not be called under failurePolicy Fail: 500 InternalError."""


class WebhookAdmission:
    """An ``AdmissionHook`` for the store: ``store.add_admission_hook(WebhookAdmission(store))``."""

    def __init__(self, store: ObjectStore, *, user: str = "system:admin") -> None:
        self._store = store
        self._user = user

    async def __call__(self, res: ResourceKind, operation: str, obj: Obj) -> Obj:
        if res.group == "admissionregistration.k8s.io":
            return obj
        configs, _ = await self._store.list(_MWC)
        for config in configs:
            for hook in config.get("webhooks") or []:
                if await self._applies(hook, res, operation, obj):
                    obj = await self._call(config, hook, res, operation, obj)
        return obj

    async def _applies(self, hook: Obj, res: ResourceKind, operation: str, obj: Obj) -> bool:
        if not any(_rule_matches(r, res, operation) for r in hook.get("rules") or []):
            return False
        meta = obj.get("metadata") or {}
        if not selector_matches(hook.get("objectSelector"), meta.get("labels") or {}):
            return False
        namespace = meta.get("namespace")
        if res.namespaced and namespace:
            try:
                ns = await self._store.get(_NAMESPACE, namespace, namespace=None)
            except NotFound:
                return False
            ns_labels = dict((ns.get("metadata") or {}).get("labels") or {})
            ns_labels.setdefault("kubernetes.io/metadata.name", namespace)
            if not selector_matches(hook.get("namespaceSelector"), ns_labels):
                return False
        return True

    async def _call(self, config: Obj, hook: Obj, res: ResourceKind, operation: str,
                    obj: Obj) -> Obj:
        name = hook.get("name", "")
        fail_closed = hook.get("failurePolicy", "Fail") == "Fail"
        try:
            response = await self._post(hook, self._review(res, operation, obj))
        except (TimeoutError, OSError, aiohttp.ClientError, ValueError) as exc:
            if not fail_closed:
                return obj
            raise WebhookCallFailed(
                f'Internal error occurred: failed calling webhook "{name}": {exc}',
            ) from exc
        answer = response.get("response") or {}
        if not answer.get("allowed", False):
            message = (answer.get("status") or {}).get("message") or "denied"
            raise Forbidden(f'admission webhook "{name}" denied the request: {message}')
        patch = answer.get("patch")
        if not patch:
            return obj
        if answer.get("patchType", "JSONPatch") != "JSONPatch":
            raise WebhookCallFailed(
                f'admission webhook "{name}" returned patchType {answer["patchType"]}')
        operations = json.loads(base64.b64decode(patch))
        return jsonpatch.apply_patch(copy.deepcopy(obj), operations)

    def _review(self, res: ResourceKind, operation: str, obj: Obj) -> Obj:
        meta = obj.get("metadata") or {}
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": {"group": res.group, "version": res.version, "kind": res.kind},
                "resource": {"group": res.group, "version": res.version,
                             "resource": res.plural},
                "requestKind": {"group": res.group, "version": res.version, "kind": res.kind},
                "requestResource": {"group": res.group, "version": res.version,
                                    "resource": res.plural},
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace", ""),
                "operation": operation,
                "userInfo": {"username": self._user},
                "object": obj,
                "oldObject": None,
                "dryRun": False,
                "options": None,
            },
        }

    async def _post(self, hook: Obj, review: Obj) -> Obj:
        client_config = hook.get("clientConfig") or {}
        timeout = aiohttp.ClientTimeout(total=float(hook.get("timeoutSeconds", 10)))
        context = ssl.create_default_context()
        bundle = client_config.get("caBundle")
        if bundle:
            context.load_verify_locations(cadata=base64.b64decode(bundle).decode())
        if "url" in client_config:
            url, server_name = client_config["url"], None
        else:
            url, server_name = await self._service_url(client_config.get("service") or {})
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(url, json=review, ssl=context,
                                    server_hostname=server_name) as reply:
                if reply.status != 200:
                    raise ValueError(f"HTTP {reply.status} from {url}")
                return await reply.json(content_type=None)

    async def _service_url(self, service: Obj) -> tuple[str, str]:
        namespace, name = service.get("namespace", ""), service.get("name", "")
        port = int(service.get("port", 443))
        svc = await self._store.get(_SERVICE, name, namespace=namespace)
        target: Any = port
        port_name = ""
        for p in (svc.get("spec") or {}).get("ports") or []:
            if int(p.get("port", 0)) == port:
                target, port_name = p.get("targetPort", port), p.get("name", "")
        endpoints = await self._store.get(_ENDPOINTS, name, namespace=namespace)
        for subset in endpoints.get("subsets") or []:
            addresses = subset.get("addresses") or []
            if not addresses:
                continue
            number = target if isinstance(target, int) else None
            for p in subset.get("ports") or []:
                if p.get("name", "") == port_name or number is None:
                    number = int(p["port"])
            if number is None:
                continue
            path = service.get("path", "/")
            address = addresses[0]["ip"]
            return f"https://{address}:{number}{path}", f"{name}.{namespace}.svc"
        raise OSError(f'no endpoints available for service "{name}"')
