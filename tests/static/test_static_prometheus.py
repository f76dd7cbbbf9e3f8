"""The per-cluster Prometheus config in clusters/prometheus/ is one promtool accepts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster_manifests import CLUSTERS_DIR, documents

pytestmark = [pytest.mark.static, pytest.mark.prometheus]

PROMTOOL = shutil.which("promtool")


def _scrape_config() -> dict[str, Any]:
    (cm,) = [
        d.body
        for d in documents(CLUSTERS_DIR / "prometheus" / "prometheus.yaml")
        if d.kind == "ConfigMap"
    ]
    return yaml.safe_load(cm["data"]["prometheus.yml"])  # type: ignore[no-any-return]


def _checkable(config: dict[str, Any]) -> dict[str, Any]:
    """Debian builds Prometheus without Kubernetes discovery, so its promtool rejects
    kubernetes_sd_configs; swap them for a static target and check everything else."""
    for job in config["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
    return config


def _promtool_check(tmp_path: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.skip("promtool not installed (.ci/system-deps installs Debian's prometheus)")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [PROMTOOL, "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_promtool_accepts_the_config(tmp_path: Path) -> None:
    res = _promtool_check(tmp_path, _checkable(_scrape_config()))
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_rejects_a_broken_relabel_regex(tmp_path: Path) -> None:
    config = _checkable(_scrape_config())
    config["scrape_configs"][1]["relabel_configs"][0]["regex"] = "(unclosed"
    res = _promtool_check(tmp_path, config)
    assert res.returncode != 0


def test_jobs_the_runbook_alerts_name() -> None:
    jobs = {j["job_name"]: j for j in _scrape_config()["scrape_configs"]}
    assert {"kubernetes-pods", "istiod", "istio-eastwestgateway"} <= set(jobs)
    for health_only in ("istiod", "istio-eastwestgateway"):
        # Everything they scrape is dropped: only `up` remains, nothing is counted twice.
        (drop,) = jobs[health_only]["metric_relabel_configs"]
        assert drop == {"source_labels": ["__name__"], "action": "drop", "regex": ".+"}
    assert jobs["kubernetes-pods"]["relabel_configs"][0]["source_labels"] == [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape"
    ]
