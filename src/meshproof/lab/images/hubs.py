"""Registries that publish the same image under another name: the lab reads them as one.

Istio pushes every image it releases to several hubs, and manifests name whichever
one their Istio version used (istio/istio):

- ``registry.istio.io/release``: the default hub since 1.30 (PR #59364,
  ``releasenotes/notes/use-registry-istio-io.yaml``, ``Makefile.core.mk``
  ``ISTIO_BASE_REGISTRY``); the samples use it (``samples/helloworld/helloworld.yaml``:
  ``registry.istio.io/release/examples-helloworld-v1:1.0``);
- ``docker.io/istio``: the samples' hub before 1.30, still published to;
- ``gcr.io/istio-release``: the hub of earlier releases (e.g. the 1.27.1 install in
  ``tests/integration/pilot/testdata/upgrade/``);
- ``registry.istio.io/testing`` and ``gcr.io/istio-testing``: dev builds
  (``manifests/profiles/default.yaml`` ``hub``).

:func:`canonical` rewrites each to ``docker.io/istio``, so ``istio/examples-helloworld``
finds its program under every name a manifest may use.
"""

from __future__ import annotations

__all__ = ["ISTIO_HUBS", "canonical"]

ISTIO_HUBS: tuple[str, ...] = (
    "registry.istio.io/release",
    "registry.istio.io/testing",
    "gcr.io/istio-release",
    "gcr.io/istio-testing",
)
"""Hubs publishing the images of ``docker.io/istio`` under the same repository names."""

_CANONICAL = "docker.io/istio"


def canonical(image: str) -> str:
    """``image`` with an Istio hub replaced by ``docker.io/istio``; any other image unchanged.

    The registry host is compared without regard to case, as registries treat it.
    """
    host, sep, rest = image.partition("/")
    if not sep:
        return image
    name = f"{host.lower()}/{rest}"
    for hub in ISTIO_HUBS:
        if name.startswith(hub + "/"):
            return f"{_CANONICAL}/{name[len(hub) + 1:]}"
    return image
