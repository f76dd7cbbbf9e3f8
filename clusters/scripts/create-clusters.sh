#!/usr/bin/env bash
# Step 3: both kind clusters (clusters/kind/<cluster>.yaml), with contexts
# renamed kind-<cluster> -> <cluster> so that every tool and the target file
# say aws-eks / gcp-gke as the runbook does. Existing clusters are kept.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

mkdir -p "$KIND_STATE_DIR"
for cluster in "${MESH_CLUSTERS[@]}"; do
  if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    log "$cluster: cluster exists, kept"
    kind export kubeconfig --name "$cluster" --kubeconfig "$KUBECONFIG"
  else
    log "$cluster: creating ($KIND_NODE_IMAGE)"
    kind create cluster --config "$CLUSTERS_DIR/kind/$cluster.yaml" \
      --kubeconfig "$KUBECONFIG" --wait "$WAIT_TIMEOUT"
  fi
  kubectl config delete-context "$cluster" >/dev/null 2>&1 || true
  kubectl config rename-context "kind-$cluster" "$cluster"
done
kubectl config use-context "${MESH_CLUSTERS[0]}" >/dev/null
log "contexts: $(kubectl config get-contexts -o name | tr '\n' ' ')"
