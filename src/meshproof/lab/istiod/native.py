"""Whether istiod injects native sidecars: ``ENABLE_NATIVE_SIDECARS`` and the nodes' kubelets.

istiod reads ``ENABLE_NATIVE_SIDECARS`` (``true`` / ``false`` / ``auto``, default ``auto``;
istio/istio ``pilot/pkg/features/pilot.go``). ``auto`` injects native sidecars only when
every node's kubelet is 1.33 or newer, where sidecar containers are GA
(``pkg/kube/inject/webhook.go`` ``DetectNativeSidecar``). Native sidecars became the
default in Istio 1.27: the compatibility profiles for 1.25 and 1.26 set
``ENABLE_NATIVE_SIDECARS: "false"`` under "1.27 behavioral changes"
(``manifests/helm-profiles/compatibility-version-1.26.yaml``), so an istiod older than 1.27
injects classic sidecars unless told otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MIN_KUBELET_MINOR", "NATIVE_DEFAULT_SINCE", "default_mode", "istio_version",
           "native_sidecars"]

MIN_KUBELET_MINOR = 33
NATIVE_DEFAULT_SINCE = (1, 27)

_VERSION = re.compile(r"(\d+)\.(\d+)")


def istio_version(image: str) -> tuple[int, int] | None:
    """``(major, minor)`` from an Istio image tag (``docker.io/istio/pilot:1.31.0``)."""
    tag = image.rpartition("/")[2].partition(":")[2]
    match = _VERSION.match(tag)
    return (int(match.group(1)), int(match.group(2))) if match else None


def default_mode(version: tuple[int, int] | None) -> str:
    """``ENABLE_NATIVE_SIDECARS``'s default for an istiod of this version."""
    if version is not None and version < NATIVE_DEFAULT_SINCE:
        return "false"
    return "auto"


def native_sidecars(mode: str, kubelet_versions: Iterable[str] | None) -> bool:
    """istiod's decision for ``mode``; ``auto`` needs every kubelet at 1.33 or newer, and
    nodes istiod could not read count as too old (an unknown mode counts as ``false``, as
    istiod warns and disables)."""
    mode = mode.strip().lower()
    if mode == "true":
        return True
    if mode != "auto" or kubelet_versions is None:
        return False
    for version in kubelet_versions:
        match = _VERSION.search(version)
        if match is None or int(match.group(2)) < MIN_KUBELET_MINOR:
            return False
    return True
