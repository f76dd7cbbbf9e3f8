"""Recording stand-ins for docker, kind, kubectl, helm and istioctl, to run the kind bootstrap
scripts on a machine without Docker: each call is logged, plausible output is printed."""

from __future__ import annotations

import stat
from pathlib import Path

__all__ = ["STUB_TOOLS", "write_stubs"]

STUB_TOOLS = ("docker", "kind", "kubectl", "helm", "istioctl")

# One script for every tool, dispatching on its own name. It appends
# "<tool> <args>" to $STUB_LOG and, for `-f -`, the manifest it was given
# to $STUB_LOG.stdin.
_STUB = r"""#!/usr/bin/env bash
tool="$(basename "$0")"
printf '%s %s\n' "$tool" "$*" >>"$STUB_LOG"
case "$tool $*" in
  "docker version"*) echo 27.3.1 ;;
  "docker network inspect"*) echo "fc00:f853:ccd:e793::/64 172.18.0.0/16 " ;;
  "docker inspect"*aws-eks*) echo 172.18.0.2 ;;
  "docker inspect"*gcp-gke*) echo 172.18.0.3 ;;
  "kind version"*) echo "kind v0.32.0 go1.25.1 linux/amd64" ;;
  "kind get clusters"*) ;;
  "kubectl version"*) echo "Client Version: v1.36.1" ;;
  "kubectl config get-contexts"*) printf 'aws-eks\ngcp-gke\n' ;;
  "kubectl "*jsonpath*) printf '172.18.255.60' ;;
  "kubectl "*"create secret"*) printf 'apiVersion: v1\nkind: Secret\n' ;;
  "helm version"*) echo "v3.19.0+g3d8990f" ;;
  "istioctl version"*) echo "${STUB_ISTIO_VERSION:-1.31.0}" ;;
  "istioctl create-remote-secret"*) printf 'apiVersion: v1\nkind: Secret\n' ;;
esac
if [[ " $* " == *" -f - "* ]]; then
  cat >>"$STUB_LOG.stdin"
fi
exit 0
"""


def write_stubs(bin_dir: Path, tools: tuple[str, ...] = STUB_TOOLS) -> None:
    """Write one executable stub per tool into ``bin_dir``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        path = bin_dir / tool
        path.write_text(_STUB)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
