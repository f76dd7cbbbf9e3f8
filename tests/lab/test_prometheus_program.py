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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshproof.lab.images.context import ContainerContext
from meshproof.lab.install.bootstrap import clusters_dir, load_manifests
from meshproof.lab.prometheus.discovery import pod_targets, write_targets
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


def test_relabelling_of_discovered_pods_gives_the_labels_the_suite_queries(
        tmp_path: Path) -> None:
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
    query = urllib.parse.urlencode({"query": 'istio_requests_total{job="kubernetes-pods"}'})
    url = f"http://{PROMETHEUS_IP}:{port}/api/v1/query?{query}"
    try:
        deadline = time.monotonic() + 30
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not result:
            try:
                result = json.loads(urllib.request.urlopen(url, timeout=2).read())["data"][
                    "result"]
            except OSError:
                pass
            if not result:
                time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        exporter.shutdown()
    assert result, "Prometheus never scraped the discovered pod"
    labels = result[0]["metric"]
    assert (labels["namespace"], labels["pod"], labels["app"]) == (
        "sample", "helloworld-v1-abc12", "helloworld")
    assert labels["reporter"] == "destination"
