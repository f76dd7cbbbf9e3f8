"""The lab's cert-manager: its install objects and the controller program.

- :mod:`.install` renders what ``kubectl apply -f cert-manager.yaml`` (v1.21.1) creates
  that the lab needs (CRDs, namespace, service account, controller Deployment, Service);
- :mod:`.image` maps ``quay.io/jetstack/cert-manager-controller`` to :mod:`.program`,
  the controller that reconciles Issuers, ClusterIssuers and Certificates;
- :mod:`.breaks` is the ``cert-expiring`` break switch.

What it emulates and what it leaves out is in this package's ``README.md``.
"""

from __future__ import annotations

__all__: list[str] = []
