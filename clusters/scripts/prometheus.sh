#!/usr/bin/env bash
# Step 12: one Prometheus per cluster (clusters/prometheus/prometheus.yaml).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

for cluster in "${MESH_CLUSTERS[@]}"; do
  log "$cluster: prometheus"
  kubectl --context "$cluster" apply -f "$CLUSTERS_DIR/prometheus/prometheus.yaml"
done
