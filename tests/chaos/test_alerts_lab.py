"""The ALERTS drill on the lab: plain ``chaos run`` of each alerts experiment holds on a
healthy lab (every alert it applies a fault for fires, and the cross-cluster latency
recovers after the mitigation), and a deliberately wrong IstiodDown expression makes
ALERTS violated, naming the alert and the expression evaluated.

One lab serves the module; every experiment undoes its changes (checked after each).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed

from meshproof.chaos import actions, alerts, state
from tests.chaos.test_drills_lab import assert_clean, chaos_run
from tests.support.lab import RunningLab, running_lab

pytestmark = [pytest.mark.lab, pytest.mark.prometheus]

EXPERIMENTS = {
    "alerts-component-down.json": {"IstiodDown", "EastWestGatewayDown"},
    "alerts-cross-cluster-latency.json": {"CrossClusterLatencyHigh"},
    "alerts-certificate-and-tls.json": {"CertificateExpiringSoon", "MtlsHandshakeFailures"},
}
SHORT_ALERT_WAIT_S = 20
"""The negative control's alert timeout: the wrong query never fires, however long it waits."""
WRONG_ISTIOD_DOWN = 'up{job="istio-pilot"} == 0'
"""IstiodDown with a job no target has (istiod's pre-1.5 name): it can never fire. The
runbook's own query is no negative control here: the lab's Prometheus has a health-only
job "istiod", whose `up` of a terminating pod may read 0 for one scrape."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with running_lab(tmp_path_factory.mktemp("alerts"), mesh=True) as lab:
        yield lab


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_plain_chaos_run_of_the_alerts_experiment_holds_on_the_healthy_lab(
        lab: RunningLab, name: str, tmp_path: Path) -> None:
    journal, output = chaos_run(lab, name, tmp_path)
    assert journal["status"] == "completed" and journal["deviated"] is False, output
    runs = {r["activity"]["name"]: r for r in journal["run"]}
    assert all(r["status"] == "succeeded" for r in runs.values()), output
    verdict = runs["alerts-verdict"]["output"]
    assert verdict["verdict"] == "held", verdict
    fired = {m["alert"] for m in verdict["evidence"]["measured"] if m["fired_s"] is not None}
    assert fired == EXPERIMENTS[name], verdict
    assert_clean(lab)


def test_a_wrong_istiod_down_expression_makes_alerts_violated(lab: RunningLab) -> None:
    doc = yaml.safe_load(lab.target.read_text())
    doc["timeouts"] = {**(doc.get("timeouts") or {}), "alert_fire": SHORT_ALERT_WAIT_S}
    short = lab.root / "short-alert-wait.yaml"
    short.write_text(yaml.safe_dump(doc, sort_keys=False))
    config = {"meshproof_target": str(short)}
    cluster = lab.contexts[0]
    drill = state.drill_for(config)
    catalog = copy.copy(drill.catalog)
    catalog.alerts = tuple(a.model_copy(update={"expr": WRONG_ISTIOD_DOWN})
                           if a.name == "IstiodDown" else a for a in drill.catalog.alerts)
    drill.catalog = catalog
    try:
        actions.stop_istiod(cluster, configuration=config)
        measured = alerts.wait_for_alert_to_fire(cluster, "IstiodDown", configuration=config)
        actions.restore(cluster, configuration=config)
        with pytest.raises(ActivityFailed) as failed:
            alerts.alerts_verdict(configuration=config)
    finally:
        actions.restore(cluster, configuration=config)
        drill.close()
        state.finish()
    assert measured["fired_s"] is None and measured["firing_before"] is False
    assert str(failed.value).startswith(
        f"violated: ALERTS: IstiodDown on {cluster} did not fire within the")
    assert f"expression evaluated: {WRONG_ISTIOD_DOWN}" in str(failed.value)
    assert_clean(lab)
