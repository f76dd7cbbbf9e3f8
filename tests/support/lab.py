"""Start a lab for tests, and talk to it.

Two ways (see docs/lab.md):

- ``shared_lab()``: one lab per pytest process, started on first use in a temp
  dir and stopped at interpreter exit. Use it for tests that only add objects
  (give each test its own namespace with ``lab.namespace(...)``)::

      from tests.support.lab import shared_lab

      @pytest.fixture(scope="module")
      def lab():
          return shared_lab()

- ``running_lab(directory)``: a context manager for tests that stop or break the
  lab themselves.

Both give a :class:`RunningLab` with its paths, an environment for subprocesses
(``MESHPROOF_LAB_DIR``, ``KUBECONFIG``), ``kubectl(...)``, ``apply(yaml)`` and
``client(context)`` (an official ``kubernetes`` ApiClient).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunningLab", "lab_command", "running_lab", "shared_lab", "start_lab", "stop_lab"]

CONTEXTS = ("aws-eks", "gcp-gke")


def lab_command(root: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    """``meshproof lab ARGS`` (through ``meshproof.lab.cli``) with the lab dir ``root``."""
    # The daemon stops by itself if this test process dies without `lab down`.
    env = {**os.environ, "MESHPROOF_LAB_DIR": str(root),
           "MESHPROOF_LAB_OWNER_PID": str(os.getpid())}
    return subprocess.run([sys.executable, "-m", "meshproof.lab.cli", *args], check=False, env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=str(root.parent))


@dataclass
class RunningLab:
    """A lab started by this module."""

    root: Path
    contexts: tuple[str, ...] = CONTEXTS
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def target(self) -> Path:
        return self.root / "target.yaml"

    @property
    def env(self) -> dict[str, str]:
        """``os.environ`` plus what tools need to find this lab (one kubeconfig file only:
        chaosk8s cannot read a colon-separated KUBECONFIG)."""
        return {**os.environ, "MESHPROOF_LAB_DIR": str(self.root),
                "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, context: str = "aws-eks", check: bool = True,
                timeout: float = 90, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", "--context", context, *args], check=False, env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} (context {context}) exited "
                                 f"{proc.returncode}: {proc.stderr.strip()}")
        return proc

    def apply(self, manifest: str, *, context: str = "aws-eks", namespace: str = "") -> None:
        """``kubectl apply -f -`` (client-side, without schema validation)."""
        ns = ["-n", namespace] if namespace else []
        self.kubectl("apply", "--validate=false", *ns, "-f", "-", context=context,
                     stdin=manifest)

    def namespace(self, prefix: str, *, context: str = "aws-eks") -> str:
        """A fresh namespace for one test."""
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n",
                   context=context)
        return name

    def client(self, context: str = "aws-eks") -> Any:
        """An official-client ``ApiClient`` for ``context`` (cached)."""
        if context not in self._clients:
            from kubernetes import config

            self._clients[context] = config.new_client_from_config(
                config_file=str(self.kubeconfig), context=context)
        return self._clients[context]


def start_lab(root: Path, *, mesh: bool = False, istio: str = "") -> RunningLab:
    """``meshproof lab up`` in ``root`` (``--bare`` unless ``mesh``: the Kubernetes tests
    need only the clusters; ``istio`` picks the release); raises ``AssertionError`` with the
    log when it fails."""
    root.mkdir(parents=True, exist_ok=True)
    args = (["--istio", istio] if istio else []) if mesh else ["--bare"]
    proc = lab_command(root, "up", *args, timeout=420)
    if proc.returncode != 0:
        log = root / "logs" / "supervisor.log"
        tail = log.read_text()[-3000:] if log.exists() else "(no log)"
        raise AssertionError(f"lab up failed ({proc.returncode}): {proc.stderr}\n{tail}")
    return RunningLab(root)


def stop_lab(lab: RunningLab) -> None:
    """``meshproof lab down``; asserts it worked."""
    proc = lab_command(lab.root, "down")
    assert proc.returncode == 0, proc.stderr


@contextmanager
def running_lab(directory: Path, *, mesh: bool = False, istio: str = ""
                ) -> Iterator[RunningLab]:
    """A lab in ``directory/lab`` for the duration of the block."""
    lab = start_lab(directory / "lab", mesh=mesh, istio=istio)
    try:
        yield lab
    finally:
        stop_lab(lab)


_SHARED: RunningLab | None = None


def shared_lab() -> RunningLab:
    """The lab shared by every test of this process (started on first call)."""
    global _SHARED
    if _SHARED is None:
        tmp = Path(tempfile.mkdtemp(prefix="meshproof-lab-"))
        lab = start_lab(tmp / "lab")

        def _stop() -> None:
            try:
                stop_lab(lab)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

        atexit.register(_stop)
        _SHARED = lab
    return _SHARED
