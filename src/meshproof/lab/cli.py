"""``meshproof lab up | down | status [--json] | break SWITCH | heal [SWITCH] | forget-metrics``.

Lines a person reads start with ``lab:``; ``status --json`` is versioned.
Exit codes: 0 done, 2 could not (the lab is not up, it did not become Ready,
an unknown switch).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from meshproof.errors import LabError, MeshproofError, WaitTimeout
from meshproof.lab.install.versions import DEFAULT_ISTIO, istio_tag
from meshproof.lab.state import LabPaths, pid_alive, read_lab_json
from meshproof.timeouts import DEFAULT_TIMEOUTS, Timeouts
from meshproof.waiting import eventually

__all__ = ["Switch", "cluster_summary", "main", "register_switch", "switches"]

STATUS_JSON_VERSION = 1


@dataclass(frozen=True, slots=True)
class Switch:
    """A named failure the lab can be put into (DESIGN.md §3, break switches)."""

    name: str
    description: str
    apply: Callable[[LabPaths], None]
    revert: Callable[[LabPaths], None]


_SWITCHES: dict[str, Switch] = {}
_LOAD_FAILURES: dict[str, str] = {}


def register_switch(switch: Switch) -> None:
    """Make ``meshproof lab break <switch.name>`` / ``heal`` know ``switch``."""
    _SWITCHES[switch.name] = switch


def switches() -> dict[str, Switch]:
    return dict(_SWITCHES)


def load_switches() -> dict[str, str]:
    """Import what registers switches: every ``meshproof.lab.<part>.switch`` module and
    ``meshproof.lab.switches.register_all()``. Returns failures (module → error), so that
    one part's bug does not hide the other switches."""
    import importlib
    import importlib.util
    import pkgutil

    from meshproof import lab

    failed: dict[str, str] = {}
    names = [f"meshproof.lab.{i.name}.switch" for i in pkgutil.iter_modules(lab.__path__)
             if i.ispkg]
    for name in names:
        try:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        except Exception as exc:  # reported with the unknown-switch error
            failed[name] = f"{type(exc).__name__}: {exc}"
    try:
        if importlib.util.find_spec("meshproof.lab.switches") is not None:
            register_all = getattr(importlib.import_module("meshproof.lab.switches"),
                                   "register_all", None)
            if callable(register_all):
                register_all()
    except Exception as exc:
        failed["meshproof.lab.switches"] = f"{type(exc).__name__}: {exc}"
    return failed


# -- talking to a running lab -----------------------------------------------------------

def _running(paths: LabPaths) -> dict[str, Any] | None:
    data = read_lab_json(paths.lab_json)
    if data is None or not isinstance(data.get("pid"), int) or not pid_alive(data["pid"]):
        return None
    return data


def _contexts(paths: LabPaths) -> dict[str, tuple[str, str, bytes]]:
    """context → (server URL, token, CA PEM), from the lab's kubeconfig."""
    doc = yaml.safe_load(paths.kubeconfig.read_text())
    clusters = {c["name"]: c["cluster"] for c in doc.get("clusters") or []}
    users = {u["name"]: u["user"] for u in doc.get("users") or []}
    out = {}
    for ctx in doc.get("contexts") or []:
        c = clusters[ctx["context"]["cluster"]]
        out[ctx["name"]] = (c["server"], users[ctx["context"]["user"]]["token"],
                            base64.b64decode(c.get("certificate-authority-data", "")))
    return out


def _get(url: str, token: str, ca_pem: bytes, path: str, timeout: float) -> Any:
    ctx = ssl.create_default_context(cadata=ca_pem.decode()) if url.startswith("https") else None
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}",
                                                      "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
        return json.loads(resp.read())


def cluster_summary(url: str, token: str, ca_pem: bytes, *, timeout: float) -> dict[str, Any]:
    """Nodes (ready/total) and pods by phase, read through the cluster's API."""
    nodes = _get(url, token, ca_pem, "/api/v1/nodes", timeout)["items"]
    pods = _get(url, token, ca_pem, "/api/v1/pods", timeout)["items"]
    ready = sum(1 for n in nodes for c in n.get("status", {}).get("conditions") or []
                if c.get("type") == "Ready" and c.get("status") == "True")
    phases = Counter(p.get("status", {}).get("phase", "Unknown") for p in pods)
    return {"url": url, "nodes": {"ready": ready, "total": len(nodes)},
            "pods": dict(sorted(phases.items()))}


# -- commands ----------------------------------------------------------------------------

def _up(paths: LabPaths, timeouts: Timeouts, *, bare: bool = False,
        istio: str | None = None) -> int:
    running = _running(paths)
    if running is not None:
        installed = running.get("istio")
        if istio and installed and installed != istio:
            raise LabError(f"the lab is already up with Istio {installed}, not {istio}; "
                           "`meshproof lab down` first")
        print(f"lab: already up (kubeconfig {paths.kubeconfig})")
        return 0
    _sweep(paths)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.lab_json.unlink(missing_ok=True)
    with open(paths.supervisor_log, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshproof.lab.supervisor", "--dir", str(paths.root),
             *(["--bare"] if bare else ["--istio", istio or DEFAULT_ISTIO])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=str(paths.root))

    def ready() -> dict[str, Any]:
        if proc.poll() is not None:
            raise LabError(f"the lab daemon exited with code {proc.returncode} while starting; "
                           f"see {paths.supervisor_log}")
        data = read_lab_json(paths.lab_json)
        assert data is not None and data.get("state") == "ready", "daemon still starting"
        summaries = {}
        for name, (url, token, ca) in _contexts(paths).items():
            try:
                summary = cluster_summary(url, token, ca, timeout=timeouts.api_request)
            except (OSError, urllib.error.URLError) as exc:
                raise AssertionError(f"cluster {name}: {exc}") from exc
            assert summary["nodes"]["ready"] >= 1, f"cluster {name}: no node Ready yet"
            summaries[name] = summary
        return summaries

    try:
        summaries = eventually(ready, timeout=timeouts.lab_ready,
                               interval=timeouts.poll_interval, what="lab clusters Ready")
    except LabError as exc:
        _stop_daemon(paths, proc.pid, timeouts)
        raise LabError(f"lab up failed: {exc}") from exc
    except WaitTimeout as exc:
        _stop_daemon(paths, proc.pid, timeouts)
        raise LabError(f"lab up failed: {exc}; see {paths.supervisor_log}") from exc
    proc.returncode = 0  # detached on purpose: `lab down` stops it; no zombie warning
    for name, summary in summaries.items():
        print(f"lab: {name} Ready at {summary['url']}")
    mesh = "" if bare else f"Istio {istio or DEFAULT_ISTIO}, "
    print(f"lab: up ({mesh}kubeconfig {paths.kubeconfig}, target {paths.target})")
    return 0


def _stop_daemon(paths: LabPaths, pid: int, timeouts: Timeouts) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        eventually(lambda: _assert_dead(pid), timeout=timeouts.lab_stop,
                   interval=min(timeouts.poll_interval, 0.2), what=f"lab daemon {pid} exit")
    except WaitTimeout:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _sweep(paths)


def _assert_dead(pid: int) -> None:
    try:
        # Reap it when it is our child (a failed `up`), so it does not linger as a zombie.
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    assert not pid_alive(pid), f"process {pid} still running"


def _sweep(paths: LabPaths) -> int:
    """Kill pod processes a crashed daemon left behind (found by their pid files)."""
    killed = 0
    for pid_file in paths.pod_pid_files():
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if pid_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        pid_file.unlink(missing_ok=True)
    return killed


def _down(paths: LabPaths, timeouts: Timeouts) -> int:
    data = _running(paths)
    if data is None:
        leftovers = _sweep(paths)
        paths.lab_json.unlink(missing_ok=True)
        print("lab: not up" + (f" (killed {leftovers} leftover pod processes)" if leftovers
                               else ""))
        return 0
    _stop_daemon(paths, int(data["pid"]), timeouts)
    paths.lab_json.unlink(missing_ok=True)
    print("lab: down")
    return 0


def _status(paths: LabPaths, timeouts: Timeouts, *, as_json: bool) -> int:
    data = _running(paths)
    if data is None:
        if as_json:
            print(json.dumps({"version": STATUS_JSON_VERSION, "up": False, "clusters": []}))
        else:
            print(f"lab: not up (state dir {paths.root})")
        return 2
    clusters = []
    for name, (url, token, ca) in _contexts(paths).items():
        entry: dict[str, Any] = {"name": name, "context": name}
        try:
            entry.update(cluster_summary(url, token, ca, timeout=timeouts.api_request))
        except (OSError, urllib.error.URLError) as exc:
            entry.update({"url": url, "error": str(exc)})
        clusters.append(entry)
    if as_json:
        print(json.dumps({"version": STATUS_JSON_VERSION, "up": True, "pid": data["pid"],
                          "kubeconfig": str(paths.kubeconfig), "target": str(paths.target),
                          "istio": data.get("istio"), "clusters": clusters}, indent=2))
        return 0
    for c in clusters:
        if "error" in c:
            print(f"lab: {c['name']:<8} {c['url']}  unreachable: {c['error']}")
            continue
        pods = " ".join(f"{k}={v}" for k, v in c["pods"].items()) or "none"
        print(f"lab: {c['name']:<8} {c['url']}  nodes {c['nodes']['ready']}/"
              f"{c['nodes']['total']} Ready  pods {pods}")
    istio = f"Istio {data['istio']}, " if data.get("istio") else ""
    print(f"lab: up ({istio}pid {data['pid']}, kubeconfig {paths.kubeconfig})")
    return 0


def _break(paths: LabPaths, name: str, *, heal: bool) -> int:
    known = ", ".join(sorted(_SWITCHES)) or "(none yet)"
    if name not in _SWITCHES:
        broken = "; ".join(f"{m} failed to load: {e}" for m, e in _LOAD_FAILURES.items())
        raise LabError(f"unknown switch {name}, known: {known}"
                       + (f" ({broken})" if broken else ""))
    if _running(paths) is None:
        raise LabError(f"cannot {'heal' if heal else 'break'} {name}: the lab is not up "
                       "(meshproof lab up)")
    switch = _SWITCHES[name]
    (switch.revert if heal else switch.apply)(paths)
    print(f"lab: {'healed' if heal else 'broke'} {name}")
    return 0


def _forget_metrics(paths: LabPaths, timeouts: Timeouts) -> int:
    """Wait until no pod is terminating (a restarted component's old pod would fail its last
    scrapes after the call), then delete every series in each cluster's Prometheus."""
    from meshproof.lab.install.hook import prometheus_url
    from meshproof.lab.prometheus.forget import forget_series

    if _running(paths) is None:
        raise LabError("cannot forget metrics: the lab is not up (meshproof lab up)")
    target = yaml.safe_load(paths.target.read_text()) or {}
    with_prometheus = {c["name"] for c in target.get("clusters") or [] if c.get("prometheus")}
    if not with_prometheus:
        raise LabError("cannot forget metrics: the lab has no Prometheus (started --bare?)")
    contexts = {name: c for name, c in _contexts(paths).items() if name in with_prometheus}
    prometheus_path = prometheus_url("")

    def none_terminating() -> None:
        for name, (url, token, ca_pem) in contexts.items():
            pods = _get(url, token, ca_pem, "/api/v1/pods", timeouts.api_request)["items"]
            going = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods
                     if p["metadata"].get("deletionTimestamp")]
            assert not going, f"{name}: pods still terminating: {', '.join(going[:5])}"

    eventually(none_terminating, timeout=timeouts.rollout, interval=timeouts.poll_interval,
               what="no pod terminating before the metrics are forgotten")

    def every_target_up() -> None:
        for name, (url, token, ca_pem) in contexts.items():
            answer = _get(url, token, ca_pem, prometheus_path + "/api/v1/targets?state=active",
                          timeouts.api_request)
            down = [str((t.get("labels") or {}).get("pod") or t.get("scrapeUrl"))
                    for t in (answer.get("data") or {}).get("activeTargets") or []
                    if t.get("health") != "up"]
            assert not down, f"{name}: scrape targets not up yet: {', '.join(down[:5])}"

    # Restarted components settle (their first scrapes answered) before the slate is wiped;
    # a fault that keeps a target down (a flapping component) only makes this wait its bound.
    try:
        eventually(every_target_up, timeout=timeouts.scrape_settle,
                   interval=timeouts.poll_interval, what="every scrape target up")
    except WaitTimeout as exc:
        print(f"lab: forgetting anyway: {' '.join(str(exc).splitlines())[:300]}")
    for name, (url, token, ca_pem) in contexts.items():
        end = forget_series(prometheus_url(url), token, ca_pem, timeout=timeouts.api_request)
        print(f"lab: {name}: Prometheus forgot every series recorded until "
              f"{time.strftime('%H:%M:%S', time.gmtime(end))} UTC")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meshproof lab", description=(
        "Start, stop and inspect the lab: two emulated clusters (aws-eks, gcp-gke) on this "
        "machine. State: $MESHPROOF_LAB_DIR or .meshproof/lab."))
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the lab in the background; returns once both "
                        "clusters and the mesh in them are Ready")
    up.add_argument("--bare", action="store_true",
                    help="only the two Kubernetes clusters, without the mesh (fast)")
    up.add_argument("--istio", metavar="VERSION",
                    help=f"the Istio release to install (default {DEFAULT_ISTIO}; before 1.27 "
                    "injection gives classic sidecars, from 1.27 native ones)")
    sub.add_parser("down", help="stop every lab process")
    st = sub.add_parser("status", help="per cluster: API URL, nodes Ready, pods by phase")
    st.add_argument("--json", action="store_true", help="machine-readable (versioned) output")
    br = sub.add_parser("break", help="put the lab into a named failure")
    br.add_argument("switch")
    he = sub.add_parser("heal", help="undo a failure (all of them without a name)")
    he.add_argument("switch", nargs="?")
    sub.add_parser("forget-metrics", help="once no pod is terminating, delete every series "
                   "each cluster's Prometheus has recorded (its admin API): the next run's "
                   "windows start afresh")
    return p


def main(argv: list[str]) -> int:
    """Entry point of ``meshproof lab ...``; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    paths = LabPaths.default()
    timeouts = DEFAULT_TIMEOUTS
    try:
        if args.command == "up":
            paths.root.mkdir(parents=True, exist_ok=True)
            istio = istio_tag(args.istio) if args.istio else None
            return _up(paths, timeouts, bare=args.bare, istio=istio)
        if args.command == "down":
            return _down(paths, timeouts)
        if args.command == "status":
            return _status(paths, timeouts, as_json=args.json)
        if args.command == "forget-metrics":
            return _forget_metrics(paths, timeouts)
        if args.command in ("break", "heal"):
            _LOAD_FAILURES.update(load_switches())
        if args.command == "break":
            return _break(paths, args.switch, heal=False)
        if args.switch:
            return _break(paths, args.switch, heal=True)
        for name in sorted(_SWITCHES):
            _break(paths, name, heal=True)
        print("lab: healed " + (", ".join(sorted(_SWITCHES)) or "nothing (no switches)"))
        return 0
    except MeshproofError as exc:
        sys.stderr.write(f"lab: error: {' '.join(str(exc).splitlines())}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"lab: error: {args.command} failed on the state dir {paths.root}: "
                         f"{exc}\n")
        return 2


if __name__ == "__main__":
    # Run the imported module, not __main__: switch modules register into meshproof.lab.cli.
    from meshproof.lab.cli import main as _main

    sys.exit(_main(sys.argv[1:]))
