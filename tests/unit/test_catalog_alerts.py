"""The runbook's alerts as the catalog holds them: corrected, complete, valid PromQL."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from meshproof.catalog import Alert, load_catalog
from meshproof.errors import ConfigError

ALERTS = load_catalog().alerts


def _rendered(alert: Alert) -> str:
    return alert.render(source_cluster="aws-eks", destination_cluster="gcp-gke")


def test_every_runbook_alert_row_is_there() -> None:
    assert sorted(a.severity for a in ALERTS) == ["P0", "P0", "P0", "P1", "P1", "P2", "P2"]
    catalog = load_catalog()
    for alert in ALERTS:
        assert alert.guarantee in catalog
        assert alert.runbook and alert.trigger


def test_corrections_from_facts_are_applied() -> None:
    by_name = {a.name: a for a in ALERTS}
    latency = by_name["CrossClusterLatencyHigh"].expr
    assert 'reporter="source"' in latency
    assert "source_cluster!=destination_cluster" not in latency.replace(" ", "")
    for name in ("IstiodDown", "EastWestGatewayDown"):
        expr = by_name[name].expr
        assert 'job="kubernetes-pods"' in expr and 'job="istiod"' not in expr
    assert "envoy_ssl_handshake_failed_total" not in by_name["MtlsHandshakeFailures"].expr


def test_render_fills_cluster_pairs_and_refuses_missing_values() -> None:
    latency = next(a for a in ALERTS if a.name == "CrossClusterLatencyHigh")
    assert set(latency.placeholders) == {"source_cluster", "destination_cluster"}
    text = _rendered(latency)
    assert 'source_cluster="aws-eks"' in text and "$" not in text
    with pytest.raises(ConfigError, match="destination_cluster"):
        latency.render(source_cluster="aws-eks")


@pytest.mark.prometheus
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_every_alert_expression_is_valid_promql(tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "meshproof-runbook",
                "rules": [{"alert": a.name, "expr": _rendered(a)} for a in ALERTS],
            }
        ]
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_the_runbook_latency_query_really_does_not_parse(tmp_path: Path) -> None:
    # The negative control for the correction above: promtool rejects the runbook's text.
    latency = next(a for a in ALERTS if a.name == "CrossClusterLatencyHigh")
    assert latency.runbook_expr
    rules = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": latency.runbook_expr}]}]}
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode != 0
