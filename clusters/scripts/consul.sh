#!/usr/bin/env bash
# Step 11: Consul (chart hashicorp/consul, pinned) with catalog sync from
# Kubernetes; one datacenter per cluster, named after it.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

helm repo add hashicorp "$CONSUL_CHART_REPO" --force-update >/dev/null
for cluster in "${MESH_CLUSTERS[@]}"; do
  log "$cluster: consul chart $CONSUL_CHART_VERSION (Consul $CONSUL_VERSION)"
  helm upgrade --install consul hashicorp/consul --version "$CONSUL_CHART_VERSION" \
    --kube-context "$cluster" --namespace consul --create-namespace \
    -f "$CLUSTERS_DIR/consul/values.yaml" --set "global.datacenter=$cluster" \
    --wait --timeout "$WAIT_TIMEOUT"
done
