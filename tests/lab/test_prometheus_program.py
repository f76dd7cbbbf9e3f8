"""The lab's Prometheus: the mesh's own scrape config, run by Debian's binary.

Debian's build has no Kubernetes discovery; the lab writes file_sd targets with
the labels Kubernetes discovery would set, and the job's relabelling (from
clusters/prometheus/prometheus.yaml, unchanged) must turn them into the
namespace / pod / app labels the suite queries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshproof.lab.images.context import ContainerContext
from meshproof.lab.install.bootstrap import clusters_dir, load_manifests
from meshproof.lab.prometheus.discovery import pod_targets, write_targets
from meshproof.lab.prometheus.forget import forget_series
from meshproof.lab.prometheus.program import adapt_args, adapt_config
from tests.support.servers import free_port

pytestmark = [pytest.mark.lab, pytest.mark.prometheus]

EXPORTER_IP, PROMETHEUS_IP = "127.0.78.1", "127.0.78.2"
METRIC = 'istio_requests_total{reporter="destination",response_code="200"} 5\n'


def mesh_prometheus_config() -> dict[str, Any]:
    manifests = load_manifests(clusters_dir() / "prometheus" / "prometheus.yaml")
    configmap = next(o for o in manifests if o["kind"] == "ConfigMap")
    return dict(yaml.safe_load(configmap["data"]["prometheus.yml"]))


def context(tmp: Path, port: int) -> ContainerContext:
    return ContainerContext(
        cluster="aws-eks", namespace="istio-system", pod="prometheus-0",
        container={"name": "prometheus", "image": "prom/prometheus:v3.5.0",
                   "ports": [{"name": "http", "containerPort": port}]},
        argv=["--config.file=/etc/prometheus/prometheus.yml",
              f"--storage.tsdb.path={tmp / 'data'}", "--storage.tsdb.retention.time=2d"],
        env={"MESHPROOF_LAB_SCRAPE_INTERVAL": "1s"}, pod_ip=PROMETHEUS_IP,
        host_ip="127.0.0.1", pod_dir=str(tmp))


def sidecar_pod(port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "helloworld-v1-abc12", "namespace": "sample", "uid": "u1",
                     "labels": {"app": "helloworld", "version": "v1"},
                     "annotations": {"prometheus.io/scrape": "true",
                                     "prometheus.io/port": str(port),
                                     "prometheus.io/path": "/stats/prometheus"}},
        "spec": {"nodeName": "aws-eks-control-plane",
                 "containers": [{"name": "helloworld", "image": "helloworld",
                                 "ports": [{"containerPort": 5000}]}]},
        "status": {"phase": "Running", "podIP": EXPORTER_IP, "hostIP": "127.1.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_adapted_mesh_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    config = adapt_config(mesh_prometheus_config(), context(tmp_path, 9090))
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    for group in config["scrape_configs"]:
        for sd in group.get("file_sd_configs") or []:
            for name in sd["files"]:
                write_targets(Path(name), [])
    out = subprocess.run([promtool, "check", "config", str(path)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not any("kubernetes_sd_configs" in g for g in config["scrape_configs"])


@contextmanager
def scraping_prometheus(tmp_path: Path) -> Iterator[str]:
    """Debian's Prometheus with the lab's adapted config and flags, scraping one discovered
    sidecar every second; yields its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package prometheus)")

    class Exporter(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = METRIC.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    exporter = ThreadingHTTPServer((EXPORTER_IP, 0), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    port = free_port(PROMETHEUS_IP)
    ctx = context(tmp_path, port)
    outputs: list[tuple[Path, list[str] | None]] = []
    config = adapt_config(mesh_prometheus_config(), ctx, outputs)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    pod = sidecar_pod(int(exporter.server_address[1]))
    for path, namespaces in outputs:
        write_targets(path, pod_targets([pod], namespaces))
    args = adapt_args(ctx.argv, ctx, tmp_path / "prometheus.yml")
    assert f"--web.listen-address={PROMETHEUS_IP}:{port}" in args
    proc = subprocess.Popen([binary, *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://{PROMETHEUS_IP}:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        exporter.shutdown()


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        return list(json.loads(urllib.request.urlopen(url, timeout=2).read())["data"]["result"])
    except OSError:
        return []


def until(check: Callable[[], list[dict[str, Any]]], seconds: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


SCRAPED = 'istio_requests_total{job="kubernetes-pods"}'


def test_relabelling_of_discovered_pods_gives_the_labels_the_suite_queries(
        tmp_path: Path) -> None:
    with scraping_prometheus(tmp_path) as base:
        result = until(lambda: query(base, SCRAPED), 30)
    assert result, "Prometheus never scraped the discovered pod"
    labels = result[0]["metric"]
    assert (labels["namespace"], labels["pod"], labels["app"]) == (
        "sample", "helloworld-v1-abc12", "helloworld")
    assert labels["reporter"] == "destination"


def test_forget_metrics_deletes_what_was_recorded_and_keeps_what_comes_after(
        tmp_path: Path) -> None:
    """`meshproof lab forget-metrics` through the admin API the lab turns on: every sample up
    to the call is gone (also from a range that covered it), and the next scrape is seen."""
    counted = f"count_over_time({SCRAPED}[1h])"

    def samples() -> float:
        result = query(base, counted)
        return float(result[0]["value"][1]) if result else 0.0

    with scraping_prometheus(tmp_path) as base:
        before = until(lambda: [{}] if samples() >= 4 else [], 30) and samples()
        assert before, "Prometheus never scraped the pod four times"
        end = forget_series(base, "unused", b"", timeout=10)
        left = query(base, f"{counted} @ {end:.3f}")
        again = until(lambda: query(base, counted), 15)
    assert left == [], f"samples up to the call survived: {left}"
    assert again, "no sample after the call was recorded"
    assert float(again[0]["value"][1]) < before, (before, again)
