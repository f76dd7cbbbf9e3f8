"""The Istio versions the lab models, and what changes between them.

``meshproof lab up --istio VERSION`` installs that release's images (``hub/pilot:TAG``,
``hub/proxyv2:TAG``) in place of the ``tag`` of ``clusters/istio/*.yaml``; the lab's
istiod reads its version from its image, as a real one is that release. Behaviour that
follows the version:

- **Native sidecars** from 1.27 (``ENABLE_NATIVE_SIDECARS`` auto; the 1.25 and 1.26
  compatibility profiles turn it off: istio/istio
  ``manifests/helm-profiles/compatibility-version-1.26.yaml``): before that, injection
  puts ``istio-proxy`` among the containers.
- **Not-ready endpoints sent to Envoy** from 1.31 (``PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS``,
  off in the 1.25 to 1.30 compatibility profiles): flagged ``/failed_eds_health`` in a
  sidecar's ``/clusters``; before, a not-ready endpoint is left out.
"""

from __future__ import annotations

import re

from meshproof.errors import ConfigError

__all__ = ["DEFAULT_ISTIO", "OLDEST_ISTIO", "NEWEST_ISTIO", "istio_tag"]

DEFAULT_ISTIO = "1.31.0"
OLDEST_ISTIO = (1, 25)
NEWEST_ISTIO = (1, 31)

_TAG = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")


def istio_tag(version: str) -> str:
    """The image tag for ``--istio VERSION`` (``1.26`` → ``1.26.0``); ConfigError when the lab
    does not model that release."""
    match = _TAG.match(version.strip())
    span = f"{OLDEST_ISTIO[0]}.{OLDEST_ISTIO[1]} to {NEWEST_ISTIO[0]}.{NEWEST_ISTIO[1]}"
    if match is None:
        raise ConfigError(f"--istio {version!r} is not a version (MAJOR.MINOR[.PATCH], "
                          f"e.g. 1.26.3); the lab models Istio {span}")
    minor = (int(match.group(1)), int(match.group(2)))
    if not OLDEST_ISTIO <= minor <= NEWEST_ISTIO:
        raise ConfigError(f"--istio {version}: the lab models Istio {span}")
    return f"{minor[0]}.{minor[1]}.{int(match.group(3) or 0)}"
