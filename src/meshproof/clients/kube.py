"""Kubernetes API access per cluster, through the official client and a kubeconfig context.

In-cluster HTTP endpoints (Envoy metrics ports, istiod metrics, Consul, the probe
agent) are reached through the API server's ``pods/proxy`` and
``services/proxy`` subresources, so one code path serves every target; what a pod
answers only on its localhost (istiod's debug endpoints) by ``pods/exec``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream
from urllib3.exceptions import HTTPError as Urllib3Error

from meshproof.errors import ConfigError, MeshproofError, PermissionDenied, TargetUnreachable

__all__ = ["ClusterApi", "ExecResult", "NotFoundError", "connect", "describe_api_error"]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What a command run by ``pods/exec`` ended with."""

    code: int
    stdout: str
    stderr: str


_HANDSHAKE = re.compile(r"Handshake status (\d{3}) ([^-]*?) -\+-\+- .*? -\+-\+- (.*)$", re.S)


def _exec_refusal(exc: ApiException) -> ApiException:
    """The websocket client reports a refused exec as status 0 with the handshake's answer
    in the reason (websocket-client ``_handshake.py``: ``Handshake status 403 Forbidden
    -+-+- headers -+-+- body``); give it its HTTP status and body back."""
    found = _HANDSHAKE.search(str(exc.reason or "")) if not exc.status else None
    if found is None:
        return exc
    out = ApiException(status=int(found.group(1)), reason=found.group(2).strip())
    out.body = found.group(3).strip()
    return out


@dataclass(frozen=True, slots=True)
class ClusterApi:
    """The API clients of one cluster of the target."""

    cluster: str
    context: str
    api: client.ApiClient
    timeout: float

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    def raw(self, method: str, path: str, *, body: Any = None,
            query: dict[str, str] | None = None, content_type: str = "application/json",
            accept: str = "application/json", timeout: float | None = None) -> bytes:
        """One API call on a raw path; the body of a 2xx answer, else the project's error."""
        what = f"{method} {path} on {self.cluster}"
        try:
            method_, url, headers, data, post = self.api.param_serialize(
                method, path, query_params=list((query or {}).items()) or None,
                header_params={"Content-Type": content_type, "Accept": accept},
                body=body, auth_settings=["BearerToken"])
            response = self.api.call_api(method_, url, header_params=headers, body=data,
                                         post_params=post,
                                         _request_timeout=timeout or self.timeout)
            payload = response.read() or b""
        except ApiException as exc:
            raise describe_api_error(exc, what, self.cluster) from exc
        except (Urllib3Error, OSError) as exc:
            raise TargetUnreachable(f"{what}: API server {self.host} unreachable: {exc}") from exc
        if not 200 <= response.status < 300:
            error = ApiException(status=response.status, reason=response.reason,
                                 body=payload.decode("utf-8", "replace"))
            raise describe_api_error(error, what, self.cluster) from error
        return bytes(payload)

    def request(self, method: str, path: str, *, body: Any = None,
                query: dict[str, str] | None = None,
                content_type: str = "application/json") -> Any:
        """One API call on a raw path, JSON in and out (None for an empty answer)."""
        data = self.raw(method, path, body=body, query=query, content_type=content_type)
        return json.loads(data) if data else None

    def get(self, path: str, **query: str) -> dict[str, Any]:
        return dict(self.request("GET", path, query=query or None))

    def list_items(self, path: str, *, limit: int, **query: str) -> Iterator[dict[str, Any]]:
        """Every item of the list at ``path``, read ``limit`` at a time with ``continue``.

        A token that expires between pages (410 ``Expired``) fails the read: the caller
        starts again rather than mix two versions of the list.
        """
        token = ""
        while True:
            chunk = self.get(path, limit=str(limit), **query, **({"continue": token}
                                                                  if token else {}))
            yield from chunk.get("items") or []
            token = str((chunk.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", path, body=body))

    def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("PATCH", path, body=body,
                                 content_type="application/merge-patch+json"))

    def delete(self, path: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            self.request("DELETE", path)
        except NotFoundError:
            return False
        return True

    def proxy(
        self,
        kind: str,
        namespace: str,
        name: str,
        port: int | str,
        path: str,
        *,
        method: str = "GET",
        body: Any = None,
        scheme: str = "",
        timeout: float | None = None,
    ) -> bytes:
        """Call ``path`` on a pod's or service's port through the API server proxy."""
        if kind not in ("pods", "services"):
            raise ValueError(f"proxy kind must be pods or services, not {kind!r}")
        target = f"{scheme}:{name}:{port}" if scheme else f"{name}:{port}"
        resource = f"/api/v1/namespaces/{namespace}/{kind}/{target}/proxy/{path.lstrip('/')}"
        return self.raw(method, resource, body=body, accept="*/*", timeout=timeout)


    def exec(self, namespace: str, pod: str, command: list[str], *, container: str = "",
             timeout: float | None = None) -> ExecResult:
        """Run ``command`` in a container of a pod (``pods/exec``, the websocket the official
        client opens, as ``kubectl exec`` does); raises when the API server refuses it."""
        what = f"exec {' '.join(command)} in {namespace}/{pod} on {self.cluster}"
        extra = {"container": container} if container else {}
        try:
            ws = stream(self.core.connect_get_namespaced_pod_exec, pod, namespace,
                        command=command, stderr=True, stdin=False, stdout=True, tty=False,
                        _preload_content=False, **extra)
        except ApiException as exc:
            raise describe_api_error(_exec_refusal(exc), what, self.cluster) from exc
        wait = timeout or self.timeout
        try:
            ws.run_forever(timeout=wait)
            out = ws.read_stdout() if ws.peek_stdout() else ""
            err = ws.read_stderr() if ws.peek_stderr() else ""
            code = ws.returncode
        finally:
            ws.close()
        if code is None:
            raise TargetUnreachable(f"{what}: the command did not end within {wait:g} s")
        return ExecResult(code=int(code), stdout=str(out), stderr=str(err))


class NotFoundError(MeshproofError):
    """The object asked for does not exist (HTTP 404)."""


class WebhookUnavailable(MeshproofError):
    """An admission webhook with ``failurePolicy: Fail`` could not be called (HTTP 500,
    ``failed calling webhook``, as k8s.io/apiserver's webhook errors word it): the request
    was refused, not handled, and may succeed once the webhook's server is back."""


def describe_api_error(exc: ApiException, what: str, cluster: str) -> MeshproofError:
    """Turn an API error into the project's exception with a message a person can act on."""
    reason = ""
    try:
        status = json.loads(exc.body or "{}")
        reason = str(status.get("message") or "")
    except (ValueError, AttributeError):
        reason = str(exc.body or "")[:200]
    text = f"{what}: HTTP {exc.status} {exc.reason}" + (f": {reason}" if reason else "")
    if exc.status in (401, 403):
        return PermissionDenied(f"{text} (check the credentials of cluster {cluster})")
    if exc.status == 404:
        return NotFoundError(text)
    if exc.status in (502, 503, 504) or exc.status == 0:
        return TargetUnreachable(text)
    if exc.status == 500 and "failed calling webhook" in reason:
        return WebhookUnavailable(text)
    return MeshproofError(text)


def connect(cluster: str, *, context: str, kubeconfig: Path | None, timeout: float) -> ClusterApi:
    """Build the API client for ``context`` of ``kubeconfig`` (the default kubeconfig if None).

    Each cluster gets its own client configuration; nothing global is changed.
    """
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, ValueError) as exc:
        source = str(kubeconfig) if kubeconfig else "the default kubeconfig"
        raise ConfigError(
            f"cluster {cluster}: cannot load context {context!r} from {source}: {exc}"
        ) from exc
    return ClusterApi(
        cluster=cluster, context=context, api=client.ApiClient(configuration), timeout=timeout
    )
