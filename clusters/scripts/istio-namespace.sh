#!/usr/bin/env bash
# Step 5: istio-system, labelled topology.istio.io/network before Istio is
# installed (clusters/istio/istio-system-<cluster>.yaml).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

for cluster in "${MESH_CLUSTERS[@]}"; do
  log "$cluster: istio-system on $(network_of "$cluster")"
  kubectl --context "$cluster" apply -f "$CLUSTERS_DIR/istio/istio-system-$cluster.yaml"
done
