"""Runs the real ``prometheus`` binary with the pod's own configuration, adapted to the lab.

The ConfigMap the kind clusters get is used unchanged except where a process on
a shared host differs from a container:

- Debian's build has no Kubernetes service discovery, so each
  ``kubernetes_sd_configs`` entry of role ``pod`` becomes a ``file_sd_configs``
  entry whose targets file a companion process keeps current with the same
  ``__meta_kubernetes_pod_*`` labels (``discovery.py``); the job's relabelling
  is untouched. Other roles are not emulated and are dropped with a log line;
- the listener binds the pod's own loopback address instead of every address,
  and a job scraping ``localhost`` scrapes that address;
- the admin API is on (``--web.enable-admin-api``), so ``meshproof lab forget-metrics``
  can delete what was recorded (``forget.py``);
- the scrape interval is the lab's (``MESHPROOF_LAB_SCRAPE_INTERVAL``, default
  5s), so a run waits seconds, not minutes, for fresh samples.

The binary is ``$PROMETHEUS_BIN`` or ``prometheus`` on the host's PATH.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from meshproof.lab.images.context import ContainerContext
from meshproof.lab.prometheus.discovery import watch_loop, write_targets

__all__ = ["adapt_args", "adapt_config", "run"]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_SCRAPE_INTERVAL = "5s"


Outputs = list[tuple[Path, list[str] | None]]


def adapt_config(config: dict[str, Any], ctx: ContainerContext,
                 outputs: Outputs | None = None) -> dict[str, Any]:
    """The configuration with discovery and paths adapted for the lab.

    Each pod-role Kubernetes discovery becomes a targets file; their paths and
    namespace filters are appended to ``outputs`` for the discovery process.
    """
    outputs = outputs if outputs is not None else []
    interval = ctx.env.get("MESHPROOF_LAB_SCRAPE_INTERVAL", DEFAULT_SCRAPE_INTERVAL)
    global_ = dict(config.get("global") or {})
    global_["scrape_interval"] = interval
    global_["evaluation_interval"] = interval
    if _seconds(str(global_.get("scrape_timeout", "10s"))) > _seconds(interval):
        global_["scrape_timeout"] = interval
    config = {**config, "global": global_}
    jobs = []
    for job in config.get("scrape_configs") or []:
        job = dict(job)
        if _seconds(str(job.get("scrape_interval", interval))) > _seconds(interval):
            job["scrape_interval"] = interval
            job.pop("scrape_timeout", None)
        files = []
        for index, sd in enumerate(job.pop("kubernetes_sd_configs", None) or []):
            if sd.get("role") != "pod":
                print(f"prometheus: job {job.get('job_name')}: kubernetes_sd role "
                      f"{sd.get('role')!r} is not emulated in the lab; dropped",
                      file=ctx.log, flush=True)
                continue
            path = Path(ctx.pod_dir) / f"sd-{_name(str(job.get('job_name', 'job')))}-{index}.json"
            namespaces = (sd.get("namespaces") or {}).get("names") or None
            outputs.append((path, namespaces))
            files.append(str(path))
        if files:
            job.setdefault("file_sd_configs", []).append(
                {"files": files, "refresh_interval": "2s"})
        for static in job.get("static_configs") or []:
            # Prometheus scraping itself: in a pod, localhost is the pod; here, its address.
            static["targets"] = [t.replace("localhost:", f"{ctx.pod_ip}:")
                                 for t in static.get("targets") or []]
        for key in ("bearer_token_file",):
            if isinstance(job.get(key), str):
                job[key] = str(ctx.path(job[key]))
        tls = job.get("tls_config")
        if isinstance(tls, dict) and isinstance(tls.get("ca_file"), str):
            job["tls_config"] = dict(tls, ca_file=str(ctx.path(tls["ca_file"])))
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


def adapt_args(argv: list[str], ctx: ContainerContext, config_file: Path) -> list[str]:
    """Prometheus flags for the lab: the adapted config, the pod's address, its data dir,
    the admin API."""
    port = 9090
    for p in ctx.container.get("ports") or []:
        if p.get("name") in ("http", "web") or p.get("containerPort") == 9090:
            port = int(p["containerPort"])
            break
    kept = [a for a in argv
            if a.startswith("--") and not a.startswith(("--config.file", "--web.listen-address"))]
    if not any(a.startswith("--storage.tsdb.path") for a in kept):
        kept.append(f"--storage.tsdb.path={Path(ctx.pod_dir) / 'prometheus-data'}")
    if "--web.enable-admin-api" not in kept:
        kept.append("--web.enable-admin-api")  # for `meshproof lab forget-metrics` (forget.py)
    return [
        f"--config.file={config_file}",
        f"--web.listen-address={ctx.pod_ip}:{port}",
        *kept,
    ]


def _name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    return float(duration)


def run(ctx: ContainerContext) -> int:
    binary = os.environ.get("PROMETHEUS_BIN") or shutil.which(
        "prometheus", path=os.environ.get("MESHPROOF_HOST_PATH", "/usr/bin:/usr/local/bin")
    )
    if not binary:
        print("prometheus: binary not found (install Debian's 'prometheus' or set "
              "PROMETHEUS_BIN)", file=ctx.log, flush=True)
        return 127
    source = next((a.split("=", 1)[1] for a in ctx.argv if a.startswith("--config.file=")),
                  str(ctx.path("/etc/prometheus/prometheus.yml")))
    config = yaml.safe_load(Path(source).read_text()) or {}
    adapted = Path(ctx.pod_dir) / f"prometheus-{ctx.name}.yml"
    outputs: Outputs = []
    adapted.write_text(yaml.safe_dump(adapt_config(config, ctx, outputs), sort_keys=False))
    args = adapt_args(ctx.argv, ctx, adapted)
    for path, _ in outputs:
        write_targets(path, [])
    _start_discovery(ctx, outputs)
    print(f"prometheus: {binary} {' '.join(args)}", file=ctx.log, flush=True)
    sys.stdout.flush()
    os.execv(binary, [binary, *args])
    return 0  # not reached: the container process is now Prometheus


def _start_discovery(ctx: ContainerContext, outputs: Outputs) -> None:
    """Fork the process that keeps the targets files current; it exits with Prometheus."""
    if not outputs:
        return
    host = ctx.env.get("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    port = ctx.env.get("KUBERNETES_SERVICE_PORT", "443")
    ca_file = ctx.path(f"{SA_DIR}/ca.crt")
    api = f"{'https' if ca_file.exists() else 'http'}://{host}:{port}"
    interval = min(2.0, _seconds(ctx.env.get("MESHPROOF_LAB_SCRAPE_INTERVAL",
                                             DEFAULT_SCRAPE_INTERVAL)))
    parent = os.getpid()
    if os.fork() == 0:
        try:
            watch_loop(api, ctx.path(f"{SA_DIR}/token"), ca_file, outputs,
                       interval=interval, parent=parent)
        finally:
            os._exit(0)
