#!/usr/bin/env bash
# Step 7: the Istio control plane and ingress gateway of each cluster
# (multi-primary, multi-network; clusters/istio/<cluster>.yaml).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

for cluster in "${MESH_CLUSTERS[@]}"; do
  log "$cluster: istioctl install (Istio $ISTIO_VERSION)"
  istioctl install -y --context "$cluster" -f "$CLUSTERS_DIR/istio/$cluster.yaml"
  kubectl --context "$cluster" -n istio-system rollout status deploy/istiod --timeout="$WAIT_TIMEOUT"
done
