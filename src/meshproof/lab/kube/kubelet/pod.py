"""The pod process: ``python -m meshproof.lab.kube.kubelet.pod``.

One per running pod, in its own process group, holding the pod's containers as
its children (so killing the group kills the pod). It has no policy of its own:
the kubelet tells it, one JSON object per line on stdin, what to start or signal,
and it reports on stdout what happened::

    in : {"op": "start", "name": C, "argv": [...], "executable": X, "env": {...}, "cwd": D,
          "log": F}
         {"op": "signal", "name": C, "sig": 15}
    out: {"event": "sandbox", "pid": P}
         {"event": "started", "name": C, "pid": N}
         {"event": "failed", "name": C, "error": "exec: ..."}
         {"event": "exited", "name": C, "code": N}

SIGTERM is passed to every container and the process exits once they are gone;
end of stdin (the kubelet went away) does the same. Only the standard library is
imported, so a pod costs a few megabytes.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1


def _die_with_parent(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when its parent exits."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _container_preexec() -> None:
    _die_with_parent(signal.SIGKILL)


class _Pod:
    def __init__(self) -> None:
        # Popen objects are kept: one that is garbage-collected reaps its child itself
        # (Popen.__del__ polls), and the exit would never be reported.
        self.children: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}
        self.pids: dict[str, int] = {}
        self.terminating = False
        self.term_deadline = 0.0

    def emit(self, **event: object) -> None:
        try:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            self.terminate()

    def start(self, cmd: dict[str, object]) -> None:
        name = str(cmd["name"])
        if self.terminating:
            return
        log = open(str(cmd["log"]), "ab", buffering=0)  # noqa: SIM115 - handed to the child
        try:
            child = subprocess.Popen(
                [str(a) for a in cmd["argv"]],  # type: ignore[attr-defined]
                executable=str(cmd.get("executable") or cmd["argv"][0]),  # type: ignore[index]
                env={str(k): str(v) for k, v in dict(cmd["env"]).items()},  # type: ignore[call-overload]
                cwd=str(cmd.get("cwd") or "/"),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_container_preexec,  # the pod process has no threads: safe here
                close_fds=True,
            )
        except OSError as exc:
            msg = f"exec: {exc.strerror or exc}: {cmd['argv'][0]}"  # type: ignore[index]
            log.write((msg + "\n").encode())
            self.emit(event="failed", name=name, error=msg)
            return
        finally:
            log.close()
        self.children[child.pid] = (name, child)
        self.pids[name] = child.pid
        self.emit(event="started", name=name, pid=child.pid)

    def signal(self, name: str, sig: int) -> None:
        pid = self.pids.get(name)
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def reap(self) -> None:
        for pid, (name, child) in list(self.children.items()):
            code = child.poll()
            if code is None:
                continue
            del self.children[pid]
            if self.pids.get(name) == pid:
                del self.pids[name]
            self.emit(event="exited", name=name, code=128 - code if code < 0 else code)

    def terminate(self) -> None:
        if not self.terminating:
            self.terminating = True
            self.term_deadline = time.monotonic() + 30
            for pid in list(self.children):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass


def main() -> int:
    _die_with_parent(signal.SIGTERM)
    pod = _Pod()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: pod.terminate())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sel = selectors.DefaultSelector()
    sel.register(wake_r, selectors.EVENT_READ, "wake")
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "cmd")
    pod.emit(event="sandbox", pid=os.getpid())
    buf = b""
    while True:
        for key, _ in sel.select(timeout=1.0):
            if key.data == "wake":
                os.read(wake_r, 512)
                continue
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                sel.unregister(sys.stdin.fileno())
                pod.terminate()
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    cmd = json.loads(line)
                    if cmd.get("op") == "start":
                        pod.start(cmd)
                    elif cmd.get("op") == "signal":
                        pod.signal(str(cmd["name"]), int(cmd["sig"]))
        pod.reap()
        if pod.terminating:
            if not pod.children:
                return 0
            if time.monotonic() > pod.term_deadline:
                for pid in list(pod.children):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass


if __name__ == "__main__":
    sys.exit(main())
