"""Switches that change mesh configuration objects, as a mistaken change would."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshproof.errors import LabError
from meshproof.lab.cli import Switch, register_switch
from meshproof.lab.state import LabPaths
from meshproof.lab.switches.api import CONTEXTS, api, custom, forget, load, plain, save

__all__ = ["register"]

WEBHOOK = "istio-sidecar-injector"
NAMESPACE_WEBHOOK = "namespace.sidecar-injector.istio.io"


def _peer_authentication(mode: str) -> Callable[[LabPaths], None]:
    def change(paths: LabPaths) -> None:
        for context in CONTEXTS:
            try:
                custom(paths, context).patch_namespaced_custom_object(
                    "security.istio.io", "v1", "production", "peerauthentications", "default",
                    {"spec": {"mtls": {"mode": mode}}})
            except ApiException as exc:
                raise LabError(f"PeerAuthentication production/default on {context}: "
                               f"{exc.status} {exc.reason}") from exc
    return change


def _outlier_off(paths: LabPaths) -> None:
    saved = {}
    for context in CONTEXTS:
        rule: dict[str, Any] = plain(custom(paths, context).get_namespaced_custom_object(
            "networking.istio.io", "v1", "sample", "destinationrules", "helloworld"))
        saved[context] = ((rule.get("spec") or {}).get("trafficPolicy") or {}).get(
            "outlierDetection")
    save(paths, "no-outlier-detection", saved)
    for context in CONTEXTS:
        custom(paths, context).patch_namespaced_custom_object(
            "networking.istio.io", "v1", "sample", "destinationrules", "helloworld",
            {"spec": {"trafficPolicy": {"outlierDetection": None}}})


def _outlier_on(paths: LabPaths) -> None:
    saved = load(paths, "no-outlier-detection")
    if saved is None:
        return
    for context, outlier in saved.items():
        if outlier is not None:
            custom(paths, context).patch_namespaced_custom_object(
                "networking.istio.io", "v1", "sample", "destinationrules", "helloworld",
                {"spec": {"trafficPolicy": {"outlierDetection": outlier}}})
    forget(paths, "no-outlier-detection")


def _webhooks(paths: LabPaths, context: str
              ) -> tuple[client.AdmissionregistrationV1Api, dict[str, Any]]:
    admission = client.AdmissionregistrationV1Api(api(paths, context))
    return admission, plain(admission.read_mutating_webhook_configuration(WEBHOOK))


def _injection_off(paths: LabPaths) -> None:
    configs = {context: _webhooks(paths, context) for context in CONTEXTS}
    save(paths, "injection-off",
         {context: copy.deepcopy(config["webhooks"]) for context, (_, config) in configs.items()})
    for admission, config in configs.values():
        for hook in config["webhooks"]:
            if hook["name"] == NAMESPACE_WEBHOOK:
                # The label is still on the namespace; the injector no longer acts on it.
                for expr in hook["namespaceSelector"].get("matchExpressions") or []:
                    if expr.get("key") == "istio-injection":
                        expr["values"] = ["enabled-by-nobody"]
        admission.patch_mutating_webhook_configuration(
            WEBHOOK, [{"op": "replace", "path": "/webhooks", "value": config["webhooks"]}])


def _injection_on(paths: LabPaths) -> None:
    saved = load(paths, "injection-off")
    if saved is None:
        return
    for context, hooks in saved.items():
        admission, config = _webhooks(paths, context)
        bundles = {h["name"]: (h.get("clientConfig") or {}).get("caBundle")
                   for h in config["webhooks"]}
        for hook in hooks:
            if bundles.get(hook["name"]):
                hook.setdefault("clientConfig", {})["caBundle"] = bundles[hook["name"]]
        admission.patch_mutating_webhook_configuration(
            WEBHOOK, [{"op": "replace", "path": "/webhooks", "value": hooks}])
    forget(paths, "injection-off")


def register() -> None:
    register_switch(Switch(
        "mtls-permissive",
        "namespace production accepts plaintext (PeerAuthentication PERMISSIVE) while the "
        "target promises STRICT",
        _peer_authentication("PERMISSIVE"), _peer_authentication("STRICT")))
    register_switch(Switch(
        "no-outlier-detection",
        "helloworld's DestinationRule loses outlierDetection, so a lost east-west gateway "
        "is never ejected",
        _outlier_off, _outlier_on))
    register_switch(Switch(
        "injection-off",
        "the sidecar injector's webhook no longer matches istio-injection=enabled namespaces",
        _injection_off, _injection_on))
