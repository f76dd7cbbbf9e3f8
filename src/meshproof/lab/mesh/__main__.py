"""``python -m meshproof.lab.mesh``: run one lab proxy (the program for image ``istio/proxyv2``).

    python -m meshproof.lab.mesh --pod-ip 127.1.0.5 --pod-dir DIR \\
        (--config-url http://127.0.0.1:PORT/proxy/<ns>/<pod> | --config-file FILE)

Rewritten app probes come from ``ISTIO_KUBE_APP_PROBERS`` (as the injector sets
it) and are served on ``:15020/app-health/…``. Stops cleanly on SIGTERM /
SIGINT; exit 2 when it cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from meshproof.errors import MeshproofError
from meshproof.lab.mesh.config import AppProbe, parse_kube_app_probers
from meshproof.lab.mesh.pilot_agent import write_pilot_agent_script
from meshproof.lab.mesh.proxy import ConfigSource, FileConfigSource, HttpConfigSource, run_proxy

__all__ = ["main"]


async def _run(
    source: ConfigSource,
    pod_ip: str | None,
    pod_dir: Path | None,
    poll: float,
    probers: dict[str, AppProbe],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_proxy(
        source, pod_ip=pod_ip, pod_dir=pod_dir, poll_interval=poll, stop=stop, app_probers=probers
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meshproof-proxy", description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--config-url")
    src.add_argument("--config-file", type=Path)
    parser.add_argument("--pod-ip")
    parser.add_argument("--pod-dir", type=Path)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        source: ConfigSource = (
            HttpConfigSource(args.config_url)
            if args.config_url
            else FileConfigSource(args.config_file)
        )
        if args.pod_dir is not None:
            write_pilot_agent_script(args.pod_dir)
        probers = parse_kube_app_probers(os.environ.get("ISTIO_KUBE_APP_PROBERS", ""))
        asyncio.run(_run(source, args.pod_ip, args.pod_dir, args.poll_interval, probers))
    except MeshproofError as exc:
        print(f"meshproof-proxy: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
