"""The lab's ``consul-stale`` control: pause or resume a catalog-sync pod (stdlib only).

The sync program serves ``/lab/sync-paused`` on its pod IP, port 8080
(:mod:`.sync`); the lab's break switch finds the pod (namespace ``consul``, label
``component=sync-catalog``) through the Kubernetes API and calls these.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from meshproof.errors import LabError

__all__ = ["SYNC_SELECTOR", "set_sync_paused", "sync_paused"]

SYNC_SELECTOR = "component=sync-catalog"
"""Label selector of the catalog-sync pods (namespace ``consul``)."""


def _call(pod_ip: str, method: str, body: bytes | None, port: int, timeout: float) -> bool:
    url = f"http://{pod_ip}:{port}/lab/sync-paused"
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return bool(json.loads(reply.read())["paused"])
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        raise LabError(f"catalog sync at {pod_ip}:{port}: {method} /lab/sync-paused "
                       f"failed: {exc}") from exc


def set_sync_paused(pod_ip: str, paused: bool, *, port: int = 8080, timeout: float = 5.0) -> None:
    """Stop (``True``) or restart (``False``) the writes of the sync pod at ``pod_ip``."""
    state = _call(pod_ip, "PUT", b"true" if paused else b"false", port, timeout)
    if state != paused:
        raise LabError(f"catalog sync at {pod_ip}:{port}: asked paused={paused}, "
                       f"it reports paused={state}")


def sync_paused(pod_ip: str, *, port: int = 8080, timeout: float = 5.0) -> bool:
    """Whether the sync pod at ``pod_ip`` is paused."""
    return _call(pod_ip, "GET", None, port, timeout)
