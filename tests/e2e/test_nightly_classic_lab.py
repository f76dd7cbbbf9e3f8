"""The nightly profile on a lab running an Istio release that injects classic sidecars.

Istio before 1.27 puts ``istio-proxy`` among the pod's containers; from 1.27 it is a native
sidecar (an init container with ``restartPolicy: Always``) on kubelets ≥ 1.33 (istio/istio
``manifests/helm-profiles/compatibility-version-1.26.yaml``, "1.27 behavioral changes":
``ENABLE_NATIVE_SIDECARS: "false"``). The suite reads the proxy in both shapes, so a healthy
mesh holds every nightly guarantee on either; the default lab's run is in
``test_nightly_lab.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.nightly import nightly, proxy_shapes, verdicts
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.lab, pytest.mark.prometheus]

CLASSIC_ISTIO = "1.26"


@pytest.fixture(scope="module")
def classic_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("classic-mesh"), mesh=True,
                     istio=CLASSIC_ISTIO) as lab:
        yield lab


def test_a_healthy_lab_on_classic_sidecars_holds_every_nightly_guarantee(
        classic_lab: RunningLab, e2e_reports: Path) -> None:
    assert proxy_shapes(classic_lab) == {"classic"}
    code, report, output = nightly(classic_lab, e2e_reports / "healthy-classic")
    not_held = {k: v for k, v in verdicts(report).items() if v != "held"}
    assert code == 0 and not not_held, f"exit {code}, not held: {not_held}\n{output[-4000:]}"
