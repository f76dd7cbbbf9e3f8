"""The lab daemon: ``python -m meshproof.lab.supervisor --dir LABDIR``.

Hosts both clusters in one asyncio loop, writes the kubeconfig, the target file
and ``lab.json`` (state ``ready`` once both clusters serve and their nodes are
Ready), and on SIGTERM / SIGINT stops every pod and server and removes
``lab.json``. ``meshproof lab up`` starts it detached; ``lab down`` signals it.

``MESHPROOF_LAB_OWNER_PID`` (set by test harnesses) makes the daemon stop by
itself once that process is gone, so a killed test run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from meshproof.lab import images
from meshproof.lab.cluster import PROFILES, LabCluster
from meshproof.lab.install.hook import install_mesh_hook
from meshproof.lab.install.versions import DEFAULT_ISTIO
from meshproof.lab.state import (
    LabPaths,
    pid_alive,
    read_lab_json,
    write_kubeconfig,
    write_lab_json,
    write_target,
)

__all__ = ["CLUSTERS", "StartHook", "main", "run"]

log = logging.getLogger("meshproof.lab")
CLUSTERS = ("aws-eks", "gcp-gke")
StartHook = Callable[[list[LabCluster], LabPaths], Awaitable[None]]
"""Called with the running clusters (``.store``, ``.server``, ``.kubelet``, ``.url``) and
the lab's paths."""


async def run(paths: LabPaths, *, clusters: tuple[str, ...] = CLUSTERS,
              after_start: Sequence[StartHook] = (),
              record: dict[str, Any] | None = None) -> None:
    """Start the clusters, publish their files, serve until SIGTERM / SIGINT.

    ``after_start`` hooks (e.g. installing the mesh) run in order once the clusters serve
    and the kubeconfig and target file are written, before ``lab.json`` says ``ready``,
    so ``meshproof lab up`` returns after them. A hook that raises stops the lab.
    ``record`` adds fields to ``lab.json`` (the Istio version installed).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    owner = os.environ.get("MESHPROOF_LAB_OWNER_PID", "")
    watch_owner = asyncio.create_task(_stop_without(int(owner), stop)) if owner.isdigit() \
        else None
    for module, error in images.load_registrations().items():
        log.warning("image registrations of %s not loaded (%s); their images will not pull",
                    module, error)
    running: list[LabCluster] = []
    try:
        for name in clusters:
            cluster = LabCluster(PROFILES[name], lab_dir=paths.root)
            running.append(cluster)
            url = await cluster.start()
            log.info("cluster %s: API server at %s, node %s", name, url,
                     cluster.profile.node_name)
        endpoints = [c.endpoint() for c in running]
        write_kubeconfig(paths.kubeconfig, endpoints)
        write_target(paths.target, endpoints)
        for hook in after_start:
            await hook(running, paths)
        write_lab_json(paths.lab_json, {
            "state": "ready", "pid": os.getpid(), "started": time.time(),
            "kubeconfig": str(paths.kubeconfig), "target": str(paths.target),
            "log": str(paths.supervisor_log), **(record or {}),
            "clusters": {c.name: {"url": c.url, "context": c.name,
                                  "node": c.profile.node_name} for c in running},
        })
        log.info("lab ready: kubeconfig %s", paths.kubeconfig)
        await stop.wait()
        log.info("stopping")
    finally:
        if watch_owner is not None:
            watch_owner.cancel()
        for cluster in reversed(running):
            try:
                await cluster.stop()
            except Exception:
                log.exception("cluster %s: stop failed", cluster.name)
        data = read_lab_json(paths.lab_json)
        if data is not None and data.get("pid") == os.getpid():
            paths.lab_json.unlink(missing_ok=True)


async def _stop_without(owner: int, stop: asyncio.Event) -> None:
    while pid_alive(owner):
        await asyncio.sleep(2.0)
    log.info("owner process %d is gone; stopping", owner)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshproof.lab.supervisor")
    parser.add_argument("--dir", required=True, type=Path, help="the lab's state directory")
    parser.add_argument("--bare", action="store_true",
                        help="only the two Kubernetes clusters, without the mesh")
    parser.add_argument("--istio", default=DEFAULT_ISTIO, help="the Istio release to install")
    args = parser.parse_args(argv)
    paths = LabPaths(args.dir.resolve())
    paths.logs.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        hooks = () if args.bare else (functools.partial(install_mesh_hook,
                                                         istio_tag=args.istio),)
        asyncio.run(run(paths, after_start=hooks,
                        record=None if args.bare else {"istio": args.istio}))
    except Exception:
        log.exception("lab daemon failed")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
