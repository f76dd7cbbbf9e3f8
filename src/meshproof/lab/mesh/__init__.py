"""The lab's mesh data plane: one proxy program in three modes (sidecar, east-west, ingress).

Modules: ``config`` (what istiod pushes), ``proxy`` (the program and its
listeners), ``outbound`` / ``inbound`` (the two sides of a sidecar),
``gateway`` (east-west passthrough, ingress), ``routing``, ``upstream``
(load balancing, circuit breakers, connections), ``outlier``, ``tls``,
``stats`` / ``metrics`` / ``telemetry`` (Envoy stats, Istio metrics, peer
metadata), ``admin`` (15000/15020/15021/15090), ``pilot_agent``.
Import ``meshproof.lab.mesh.proxy`` and ``meshproof.lab.mesh.config``; this
package itself imports nothing, to keep a proxy's start-up light.
"""

__all__: list[str] = []
