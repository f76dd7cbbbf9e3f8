"""Pre-upgrade analysis and runbook rehearsal against the mesh lab, through kubectl and the API.

The installed mesh has no analysis errors; objects a runbook-era operator would
apply (a v1beta1 DestinationRule with ``consecutiveErrors``, a VirtualService
to a subset nobody defines) are each found, with their fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshproof.analysis import ERROR, WARNING, analyze
from meshproof.connections import open_connections
from meshproof.rehearsal import rehearse
from meshproof.target import load_target
from tests.support.lab import running_lab

pytestmark = [pytest.mark.lab, pytest.mark.kubectl]

RUNBOOK_ERA = """\
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: circuit-breaker}
spec:
  host: helloworld.sample.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutiveErrors: 5, interval: 30s, baseEjectionTime: 30s}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: canary}
spec:
  hosts: [helloworld.sample.svc.cluster.local]
  http:
  - route:
    - destination: {host: helloworld.sample.svc.cluster.local, subset: v9}
"""


def test_analysis_and_rehearsal_on_the_mesh_lab(tmp_path: Path) -> None:
    with running_lab(tmp_path, mesh=True) as lab:
        target = load_target(str(lab.target))
        apis = open_connections(target).apis
        installed = analyze(apis, list(target.namespaces))
        assert [f for f in installed if f.level == ERROR] == []

        ns = lab.namespace("preupgrade")
        lab.apply(RUNBOOK_ERA, namespace=ns)
        found = analyze(apis, [*target.namespaces, ns])
        ours = {(f.level, f.code, f.object) for f in found if f"{ns}/" in f.object}
        assert ours == {
            (WARNING, "Deprecated", f"DestinationRule {ns}/circuit-breaker"),
            (WARNING, "DeprecatedApiVersion", f"DestinationRule {ns}/circuit-breaker"),
            (ERROR, "ReferencedResourceNotFound", f"VirtualService {ns}/canary"),
        }
        assert all(f.fix for f in found)

        rehearsal = rehearse(target)
        by_command = {(r.command, r.cluster): r for r in rehearsal.results}
        for cluster in target.cluster_names:
            pods = by_command[("kubectl get pods -n istio-system", cluster)]
            assert pods.status == "ok", pods.reason
            assert "istiod" in pods.output
            proxy_status = by_command[("istioctl proxy-status", cluster)]
            if proxy_status.status == "not run":
                assert proxy_status.reason == "istioctl not installed"
