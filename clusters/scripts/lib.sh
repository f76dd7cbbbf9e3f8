# shellcheck shell=bash
# The variables below are read by the scripts that source this file.
# shellcheck disable=SC2034
# Shared by the kind bootstrap scripts (sourced, never run): paths, pinned
# versions, the two clusters and their networks, and small helpers.
set -euo pipefail

MESHPROOF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTERS_DIR="$MESHPROOF_ROOT/clusters"
# shellcheck source=SCRIPTDIR/../versions.env
source "$CLUSTERS_DIR/versions.env"

# Everything kind-up writes: kubeconfig, CA, target file. The user's own
# ~/.kube/config is left alone; `export KUBECONFIG=.meshproof/kind/kubeconfig`.
KIND_STATE_DIR="${MESHPROOF_KIND_DIR:-$PWD/.meshproof/kind}"
export KUBECONFIG="$KIND_STATE_DIR/kubeconfig"
MESHPROOF_PYTHON="${MESHPROOF_PYTHON:-$MESHPROOF_ROOT/.venv/bin/python}"

MESH_CLUSTERS=(aws-eks gcp-gke)
# How long one readiness wait may take on a loaded CI runner.
WAIT_TIMEOUT="${MESHPROOF_KIND_WAIT:-300s}"

log() { printf 'kind: %s\n' "$*"; }
die() { printf 'kind: error: %s\n' "$*" >&2; exit 2; }

# network_of CLUSTER: the Istio network the cluster's workloads are on.
network_of() {
  case "$1" in
    aws-eks) echo network1 ;;
    gcp-gke) echo network2 ;;
    *) die "unknown cluster '$1' (expected one of: ${MESH_CLUSTERS[*]})" ;;
  esac
}

# other_of CLUSTER: the cluster on the other network.
other_of() {
  case "$1" in
    aws-eks) echo gcp-gke ;;
    gcp-gke) echo aws-eks ;;
    *) die "unknown cluster '$1' (expected one of: ${MESH_CLUSTERS[*]})" ;;
  esac
}

# retry ATTEMPTS DELAY CMD...: for calls that race a webhook or a controller
# becoming ready right after an install; fails with the last error.
retry() {
  local attempts=$1 delay=$2 n=1
  shift 2
  until "$@"; do
    if (( n >= attempts )); then
      log "gave up after $attempts attempts: $*"
      return 1
    fi
    n=$((n + 1))
    sleep "$delay"
  done
}

# control_plane_ip CLUSTER: the node container's address on the `kind` docker
# network, where the other cluster's istiod can reach this API server.
control_plane_ip() {
  docker inspect -f '{{(index .NetworkSettings.Networks "kind").IPAddress}}' "$1-control-plane"
}

# lb_address_range SUBNET INDEX: the INDEXth block of 50 addresses, counted
# from 200 below the broadcast address of SUBNET (the `kind` docker network),
# whose low end is where docker places the node containers.
lb_address_range() {
  "$MESHPROOF_PYTHON" - "$1" "$2" <<'PY'
import ipaddress, sys
net = ipaddress.ip_network(sys.argv[1], strict=False)
if net.version != 4 or net.num_addresses < 512:
    sys.exit(f"kind: error: cannot carve LoadBalancer ranges from {net} (need IPv4, /23 or larger)")
start = net.broadcast_address - 200 + 50 * int(sys.argv[2])
print(f"{start}-{start + 49}")
PY
}
