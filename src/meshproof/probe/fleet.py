"""The probe agents of one run: deployed into every cluster, asked through the API server.

Each cluster gets a namespace the run owns (labelled with the run id, injection
enabled) holding two copies of the agent: ``probe-mesh``, which gets a sidecar
and so speaks mutual TLS, and ``probe-plain``, which opts out of injection and
stands for a client outside the mesh. The agent's code travels in a ConfigMap
and runs on a public Python image (``probe.image`` in the target, else
``DEFAULT_IMAGE``). ``remove()`` deletes the namespace; ``meshproof recover``
finds namespaces left by interrupted runs by their labels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from meshproof.clients.kube import ClusterApi, WebhookUnavailable
from meshproof.errors import MeshproofError
from meshproof.proxypod import has_proxy
from meshproof.safety.marks import RUN_ID_LABEL
from meshproof.timeouts import Timeouts
from meshproof.waiting import eventually

__all__ = ["ProbeFleet", "DEFAULT_IMAGE", "RUN_ID_LABEL", "MANAGED_BY", "AGENT_PORT"]

DEFAULT_IMAGE = "python:3.12-slim"
MANAGED_BY = {"app.kubernetes.io/managed-by": "meshproof"}
AGENT_PORT = 8080
Kind = Literal["mesh", "plain"]
KINDS: tuple[Kind, ...] = ("mesh", "plain")
_AGENT_SOURCE = Path(__file__).with_name("agent.py")


def _pod(name: str, namespace: str, image: str, run_id: str, *, inject: bool) -> dict[str, Any]:
    labels = {"app": "meshproof-probe", "meshproof.io/probe": name, RUN_ID_LABEL: run_id,
              **MANAGED_BY}
    if not inject:
        labels["sidecar.istio.io/inject"] = "false"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "agent", "image": image,
                "command": ["python", "/probe/agent.py", "--port", str(AGENT_PORT)],
                "ports": [{"containerPort": AGENT_PORT, "name": "http-probe"}],
                "env": [{"name": "POD_NAME",
                         "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NAMESPACE",
                         "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": AGENT_PORT},
                                   "periodSeconds": 1},
                "volumeMounts": [{"name": "agent", "mountPath": "/probe"}],
            }],
            "volumes": [{"name": "agent",
                         "configMap": {"name": "meshproof-probe-agent"}}],
        },
    }


@dataclass(slots=True)
class ProbeFleet:
    """Probe agents in each cluster of ``apis`` for run ``run_id``."""

    apis: dict[str, ClusterApi]
    run_id: str
    timeouts: Timeouts
    image: str = DEFAULT_IMAGE
    deployed: set[str] = field(default_factory=set)

    @property
    def namespace(self) -> str:
        return f"meshproof-probe-{self.run_id}"[:63].rstrip("-")

    @staticmethod
    def pod_name(kind: Kind) -> str:
        return f"probe-{kind}"

    def deploy(self) -> None:
        """Create the agents everywhere and wait until all are Ready."""
        for cluster, api in self.apis.items():
            self._create(cluster, api)
        for cluster, api in self.apis.items():
            self._wait_ready(cluster, api)

    def _create(self, cluster: str, api: ClusterApi) -> None:
        ns = self.namespace
        what = f"deploying the probe agents into {ns} on {cluster}"
        labels = {RUN_ID_LABEL: self.run_id, "istio-injection": "enabled", **MANAGED_BY}
        try:
            api.create("/api/v1/namespaces", {"metadata": {"name": ns, "labels": labels}})
            self.deployed.add(cluster)
            api.create(f"/api/v1/namespaces/{ns}/configmaps", {
                "metadata": {"name": "meshproof-probe-agent",
                             "labels": {RUN_ID_LABEL: self.run_id, **MANAGED_BY}},
                "data": {"agent.py": _AGENT_SOURCE.read_text()}})
            for kind in KINDS:
                self._create_pod(api, kind)
        except MeshproofError as exc:
            raise MeshproofError(f"{what}: {exc}") from exc

    def _create_pod(self, api: ClusterApi, kind: Kind) -> None:
        """Create one agent pod; while the injection webhook cannot be called (istiod
        restarting) the API server refuses the pod, so it is asked again until
        ``pod_ready`` runs out."""
        body = _pod(self.pod_name(kind), self.namespace, self.image, self.run_id,
                    inject=kind == "mesh")

        def created() -> None:
            try:
                api.create(f"/api/v1/namespaces/{self.namespace}/pods", body)
            except WebhookUnavailable as exc:
                raise AssertionError(str(exc)) from exc

        eventually(created, timeout=self.timeouts.pod_ready,
                   interval=self.timeouts.poll_interval,
                   what=f"pod {self.pod_name(kind)} created past the injection webhook")

    def _wait_ready(self, cluster: str, api: ClusterApi) -> None:
        def ready() -> None:
            for kind in KINDS:
                name = self.pod_name(kind)
                pod = api.get(f"/api/v1/namespaces/{self.namespace}/pods/{name}")
                conditions = {c["type"]: c["status"]
                              for c in (pod.get("status") or {}).get("conditions") or []}
                status = pod.get("status") or {}
                waiting = [s.get("state", {}).get("waiting", {}).get("reason", "")
                           for s in (status.get("initContainerStatuses") or [])
                           + (status.get("containerStatuses") or [])]
                assert conditions.get("Ready") == "True", (
                    f"pod {name} not Ready ({', '.join(filter(None, waiting)) or 'starting'})")

        eventually(ready, timeout=self.timeouts.pod_ready, interval=self.timeouts.poll_interval,
                   what=f"probe agents Ready in {self.namespace} on {cluster}")

    def injected(self, cluster: str) -> bool:
        """Whether the mesh copy really got a sidecar (INJECTION reads this too)."""
        pod = self.apis[cluster].get(
            f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name('mesh')}")
        return has_proxy(pod)

    def request(self, cluster: str, kind: Kind, spec: dict[str, Any]) -> dict[str, Any]:
        """Ask one agent to make requests (see ``meshproof.probe.agent``); the call may take
        as long as all of them could."""
        budget = int(spec.get("count", 1)) * float(spec.get("timeout", 5.0))
        return self._ask(cluster, kind, "request", spec,
                         timeout=self.timeouts.api_request + budget)

    def tls(self, cluster: str, kind: Kind, spec: dict[str, Any]) -> dict[str, Any]:
        return self._ask(cluster, kind, "tls", spec)

    def _ask(self, cluster: str, kind: Kind, path: str, spec: dict[str, Any], *,
             timeout: float | None = None) -> dict[str, Any]:
        raw = self.apis[cluster].proxy("pods", self.namespace, self.pod_name(kind), AGENT_PORT,
                                       path, method="POST", body=spec, timeout=timeout)
        try:
            answer = json.loads(raw)
        except ValueError as exc:
            raise MeshproofError(f"probe {kind} on {cluster} answered non-JSON: "
                                 f"{raw[:200]!r}") from exc
        if not isinstance(answer, dict):
            raise MeshproofError(f"probe {kind} on {cluster} answered {answer!r}")
        return answer

    def remove(self) -> None:
        """Delete the run's namespace everywhere it was created (idempotent)."""
        for cluster in sorted(self.deployed):
            self.apis[cluster].delete(f"/api/v1/namespaces/{self.namespace}")
            self.deployed.discard(cluster)
