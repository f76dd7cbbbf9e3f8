#!/usr/bin/env bash
# Deletes both kind clusters and what kind-up wrote (kubeconfig, CA, target).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

command -v kind >/dev/null 2>&1 || die "kind is not installed; nothing to delete with it"
for cluster in "${MESH_CLUSTERS[@]}"; do
  if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    log "$cluster: deleting"
    kind delete cluster --name "$cluster" --kubeconfig "$KUBECONFIG"
  else
    log "$cluster: no such cluster"
  fi
done
rm -rf "$KIND_STATE_DIR"
log "removed $KIND_STATE_DIR"
