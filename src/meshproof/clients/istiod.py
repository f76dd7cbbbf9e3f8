"""istiod's debug endpoints (``/debug/syncz`` and the rest on 15014), read as istioctl can.

istiod wraps them in ``allowAuthenticatedOrLocalhost`` (istio/istio
``pilot/pkg/xds/debug.go``, since PR #32903): a caller that is not on localhost and
presents no valid token gets 401. The API server deletes ``Authorization`` once it has
authenticated a request (k8s.io/apiserver ``endpoints/filters/authentication.go``), so
``pods/proxy`` to 15014's debug paths answers 401 on a real cluster. What works with
the suite's own credentials: ``pilot-discovery request GET <path>`` by exec in the
istiod pod, which calls 127.0.0.1:15014 (``pilot/cmd/pilot-discovery/app/request.go``).
It needs ``pods/exec`` in istio-system (``clusters/rbac/nightly.yaml``).
"""

from __future__ import annotations

from meshproof.clients.kube import ClusterApi
from meshproof.errors import MeshproofError, PermissionDenied

__all__ = ["DISCOVERY_CONTAINER", "ISTIOD_NAMESPACE", "DebugUnreadable", "debug_get"]

ISTIOD_NAMESPACE = "istio-system"
DISCOVERY_CONTAINER = "discovery"
EXEC_PERMISSION = ("`create` (Kubernetes >= 1.35; `get` before) on `pods/exec` in "
                   f"{ISTIOD_NAMESPACE} (clusters/rbac/nightly.yaml, Role meshproof-istiod-debug)")


class DebugUnreadable(MeshproofError):
    """istiod's debug endpoints cannot be read this way on this target (a permission, a
    missing ``pilot-discovery``, istiod refusing): nothing about istiod's health."""


def debug_get(api: ClusterApi, pod: str, path: str, *,
              namespace: str = ISTIOD_NAMESPACE) -> str:
    """The body of ``GET <path>`` on istiod pod ``pod``'s 15014, by
    ``kubectl exec <pod> -c discovery -- pilot-discovery request GET <path>``.

    Raises ``DebugUnreadable`` when the read itself is not allowed or not possible, and
    ``MeshproofError`` when istiod does not answer (the pod's istiod is down or gone)."""
    what = f"pilot-discovery request GET {path} in {namespace}/{pod} on {api.cluster}"
    try:
        result = api.exec(namespace, pod, ["pilot-discovery", "request", "GET", path],
                          container=DISCOVERY_CONTAINER)
    except PermissionDenied as exc:
        raise DebugUnreadable(f"{what}: the API server refused the exec ({exc}); the suite "
                              f"needs {EXEC_PERMISSION}") from exc
    if result.code == 0:
        return result.stdout
    err = (result.stderr.strip().splitlines() or [""])[0][:300]
    if "status code 401" in err or "status code 403" in err:
        raise DebugUnreadable(f"{what}: istiod refused its own localhost ({err})")
    if result.code in (126, 127) or "executable file not found" in err:
        raise DebugUnreadable(f"{what}: the istiod image has no pilot-discovery to exec "
                              f"(exit code {result.code}: {err})")
    raise MeshproofError(f"{what}: exit code {result.code}: {err}")
