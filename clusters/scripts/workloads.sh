#!/usr/bin/env bash
# Step 13: the mesh config and the workloads under test: namespaces and
# PeerAuthentication (clusters/mesh/), what both clusters run
# (clusters/workloads/common/), then what only this cluster runs
# (clusters/workloads/<cluster>/).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

for cluster in "${MESH_CLUSTERS[@]}"; do
  log "$cluster: mesh config and workloads"
  kubectl --context "$cluster" apply -f "$CLUSTERS_DIR/mesh/namespaces.yaml"
  kubectl --context "$cluster" apply -R -f "$CLUSTERS_DIR/mesh/"
  kubectl --context "$cluster" apply -R -f "$CLUSTERS_DIR/workloads/common/"
  kubectl --context "$cluster" apply -R -f "$CLUSTERS_DIR/workloads/$cluster/"
done
