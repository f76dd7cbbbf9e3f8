"""Runs the real ``prometheus`` binary with the pod's own configuration, adapted to the lab.

The ConfigMap the kind clusters get is used unchanged except where a process on
a shared host differs from a container:

- in-cluster service discovery (``kubernetes_sd_configs`` without ``api_server``)
  reads the service-account files under ``/var/run/secrets/...``; here those
  files live in the pod's directory, so the discovery gets the API server
  address, token file and CA file explicitly;
- the listener binds the pod's own loopback address instead of every address;
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

__all__ = ["run", "adapt_config", "adapt_args"]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_SCRAPE_INTERVAL = "5s"


def adapt_config(config: dict[str, Any], ctx: ContainerContext) -> dict[str, Any]:
    """The configuration with in-cluster paths and discovery made explicit for the lab."""
    host = ctx.env.get("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    port = ctx.env.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = str(ctx.path(f"{SA_DIR}/token"))
    ca_file = str(ctx.path(f"{SA_DIR}/ca.crt"))
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
        sds = []
        for sd in job.get("kubernetes_sd_configs") or []:
            sd = dict(sd)
            if "api_server" not in sd:
                scheme = "https" if Path(ca_file).exists() else "http"
                sd["api_server"] = f"{scheme}://{host}:{port}"
                sd["authorization"] = {"credentials_file": token_file}
                if scheme == "https":
                    sd["tls_config"] = {"ca_file": ca_file}
            sds.append(sd)
        if sds:
            job["kubernetes_sd_configs"] = sds
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
    """Prometheus flags for the lab: the adapted config, the pod's address, its data dir."""
    port = 9090
    for p in ctx.container.get("ports") or []:
        if p.get("name") in ("http", "web") or p.get("containerPort") == 9090:
            port = int(p["containerPort"])
            break
    kept = [a for a in argv[1:] if not a.startswith(("--config.file", "--web.listen-address"))]
    if not any(a.startswith("--storage.tsdb.path") for a in kept):
        kept.append(f"--storage.tsdb.path={Path(ctx.pod_dir) / 'prometheus-data'}")
    return [
        f"--config.file={config_file}",
        f"--web.listen-address={ctx.pod_ip}:{port}",
        *kept,
    ]


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
    adapted.write_text(yaml.safe_dump(adapt_config(config, ctx), sort_keys=False))
    args = adapt_args(ctx.argv, ctx, adapted)
    print(f"prometheus: {binary} {' '.join(args)}", file=ctx.log, flush=True)
    sys.stdout.flush()
    os.execv(binary, [binary, *args])
    return 0  # not reached: the container process is now Prometheus
