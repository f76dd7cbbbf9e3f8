"""How a container's process is started: its argv, PATH (the image's bin dir) and env.

Pure functions over the container spec and the registered :class:`Program`; the
kubelet hands the result to the pod process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import meshproof
from meshproof.lab.images import Program, repository_of
from meshproof.lab.images.context import map_path
from meshproof.lab.kube.kubelet.volumes import expand_vars

__all__ = [
    "SRC_ROOT",
    "container_argv",
    "container_env",
    "exec_argv",
    "image_bin_dir",
    "map_args",
    "resolve_executable",
    "site_dir",
    "pod_process_argv",
    "pod_process_env",
    "python_launch_argv",
]

SRC_ROOT = str(Path(meshproof.__file__).resolve().parent.parent)
"""The directory holding the ``meshproof`` package (put on PYTHONPATH for pods)."""

_SITECUSTOMIZE = '''\
"""Lab pods: a listener bound to the wildcard address binds to the pod's own IP instead,
so that two pods may listen on the same port, as they can in a real cluster."""
import os
import socket

_POD_IP = os.environ.get("MESHPROOF_LAB_POD_IP", "")
_bind = socket.socket.bind


def _lab_bind(self, address):
    if _POD_IP and self.family == socket.AF_INET and isinstance(address, tuple) \\
            and address[0] in ("", "0.0.0.0"):
        address = (_POD_IP,) + tuple(address[1:])
    return _bind(self, address)


socket.socket.bind = _lab_bind
'''


def site_dir(lab_dir: Path) -> Path:
    """A directory with the lab's ``sitecustomize`` (wildcard binds → pod IP) for Python pods."""
    path = lab_dir / "images" / "_site"
    target = path / "sitecustomize.py"
    if not target.exists() or target.read_text() != _SITECUSTOMIZE:
        path.mkdir(parents=True, exist_ok=True)
        target.write_text(_SITECUSTOMIZE)
    return path


def image_bin_dir(lab_dir: Path, image: str, program: Program) -> Path:
    """The image's bin dir: symlinks to the host commands the program offers (made once)."""
    key = hashlib.sha256(repr(program).encode()).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", repository_of(image))
    path = lab_dir / "images" / f"{safe}-{key}" / "bin"
    if path.is_dir():
        return path
    tmp = path.with_name(f"bin.{os.getpid()}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for cmd in program.commands:
        host = shutil.which(cmd, path="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        if host and not (tmp / cmd).exists():
            (tmp / cmd).symlink_to(host)
    for name, target in program.aliases:
        host = target if "/" in target else shutil.which(target)
        if host:
            if (tmp / name).is_symlink():
                (tmp / name).unlink()
            (tmp / name).symlink_to(host)
    try:
        tmp.rename(path)
    except OSError:  # another pod made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def map_args(args: Sequence[str], mounts: dict[str, str]) -> list[str]:
    """Rewrite mounted container paths in arguments (also inside ``sh -c`` strings)."""
    if not mounts:
        return list(args)
    alternation = "|".join(re.escape(m) for m in sorted(mounts, key=len, reverse=True) if m != "/")
    if not alternation:
        return list(args)
    pattern = re.compile(rf"(?<![\w/.-])(?:{alternation})(?=/|\b|$)[^\s'\";:]*")
    return [pattern.sub(lambda m: map_path(m.group(0), mounts), a) for a in args]


def resolve_executable(arg0: str, *, bin_dir: Path, mounts: dict[str, str]) -> str | None:
    """Where the container's ``arg0`` really is: a mounted file, the image's bin dir (by
    name, also for absolute paths like ``/usr/local/bin/python``), or the host path."""
    if "/" not in arg0:
        found = shutil.which(arg0, path=str(bin_dir))
        return found
    mapped = map_path(arg0, mounts)
    if mapped != arg0 and os.path.exists(mapped):
        return mapped
    by_name = bin_dir / os.path.basename(arg0)
    if by_name.exists():
        return str(by_name)
    return arg0 if os.path.exists(arg0) else None


def exec_argv(argv: list[str], exe: str | None) -> tuple[list[str], str]:
    """(argv, file to execute): a bare command name stays argv[0] (``$0``, ``ps`` read as in
    the container); a container path the host lacks is replaced by the host file, since
    programs such as Python locate themselves through an absolute argv[0]."""
    if exe is None:
        return argv, argv[0]
    if "/" in argv[0] and argv[0] != exe:
        return [exe, *argv[1:]], exe
    return argv, exe


def container_argv(container: dict[str, object], program: Program, env: dict[str, str]
                   ) -> list[str]:
    """``command`` + ``args`` as Kubernetes combines them with the image's ENTRYPOINT/CMD,
    after ``$(VAR)`` expansion."""
    command = [str(c) for c in container.get("command") or []]  # type: ignore[attr-defined]
    args = [str(a) for a in container.get("args") or []]  # type: ignore[attr-defined]
    if command:
        argv = command + args
    elif args:
        argv = list(program.entrypoint) + args
    else:
        argv = list(program.default_command)
    return [expand_vars(a, env) for a in argv]


SIDECAR = "istio-proxy"
OUTBOUND_CAPTURE_PORT = 15001
APP_PORT_OFFSET = 20000
"""Where an injected pod's apps listen instead of their service ports (the sidecar owns
those on the pod IP); istiod's proxy config names the same offset."""


def capture_env(pod: dict[str, Any], container: str, pod_ip: str, api_host: str
                ) -> dict[str, str]:
    """What ``istio-init``'s iptables REDIRECT does in a real pod, for the lab's processes:
    an injected pod's app containers send their HTTP through the sidecar's outbound port
    and listen off the ports the sidecar owns."""
    spec = pod.get("spec") or {}
    # Classic injection lists the proxy among the containers, native among the init
    # containers (restartPolicy Always); either way it captures the apps' traffic.
    proxies = [c for c in spec.get("containers") or [] if c.get("name") == SIDECAR]
    proxies += [c for c in spec.get("initContainers") or []
                if c.get("name") == SIDECAR and c.get("restartPolicy") == "Always"]
    if container == SIDECAR or not proxies:
        return {}
    proxy = f"http://{pod_ip}:{OUTBOUND_CAPTURE_PORT}"
    no_proxy = ",".join(dict.fromkeys([api_host, pod_ip, "127.0.0.1", "localhost"]))
    return {"HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": no_proxy,
            "no_proxy": no_proxy, "MESHPROOF_LAB_APP_PORT_OFFSET": str(APP_PORT_OFFSET)}


def container_env(spec_env: dict[str, str], *, pod: dict[str, Any], bin_dir: Path,
                  pod_dir: Path, pod_ip: str, cluster: str, mounts: dict[str, str],
                  api_host: str, api_port: int, python_program: bool, lab_dir: Path,
                  container: str = "") -> dict[str, str]:
    """The full environment: what a container runtime adds, the lab's own variables (and,
    in an injected pod, the traffic capture), then the spec's env (which wins, as in
    Kubernetes)."""
    meta: dict[str, Any] = pod.get("metadata") or {}
    home = pod_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    pythonpath = [str(site_dir(lab_dir))]
    if python_program:
        pythonpath.append(SRC_ROOT)
    env = {
        "PATH": str(bin_dir),
        "HOSTNAME": str(meta.get("name", "")),
        "HOME": str(home),
        "KUBERNETES_SERVICE_HOST": api_host,
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port),
        "MESHPROOF_LAB_CLUSTER": cluster,
        "MESHPROOF_LAB_POD_IP": pod_ip,
        "MESHPROOF_LAB_MOUNTS": json.dumps(mounts),
        "PYTHONPATH": os.pathsep.join(pythonpath),
        "TMPDIR": mounts.get("/tmp", "/tmp"),
        # Logs reach `kubectl logs` as they are written, not when a buffer fills.
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
        **capture_env(pod, container, pod_ip, api_host),
    }
    env.update(spec_env)
    return env


def python_launch_argv(ctx_file: Path) -> list[str]:
    """argv of the container process for a Python lab program."""
    return [sys.executable, "-m", "meshproof.lab.images.launch", str(ctx_file)]


def pod_process_argv() -> list[str]:
    """The pod process: ``-S`` keeps site-packages out, so a pod costs a few MB."""
    return [sys.executable, "-S", "-m", "meshproof.lab.kube.kubelet.pod"]


def pod_process_env() -> dict[str, str]:
    return {"PYTHONPATH": SRC_ROOT, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONDONTWRITEBYTECODE": "1"}
