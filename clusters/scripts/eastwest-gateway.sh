#!/usr/bin/env bash
# Step 8: the east-west gateway of each cluster, its LoadBalancer address, and
# the cross-network Gateway that exposes the cluster's services through it.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

eastwest_address() {
  kubectl --context "$1" -n istio-system get svc istio-eastwestgateway \
    -o jsonpath='{.status.loadBalancer.ingress[0].ip}'
}
has_eastwest_address() { [ -n "$(eastwest_address "$1")" ]; }

for cluster in "${MESH_CLUSTERS[@]}"; do
  log "$cluster: east-west gateway on $(network_of "$cluster")"
  istioctl install -y --context "$cluster" -f "$CLUSTERS_DIR/istio/eastwest-gateway-$cluster.yaml"
  kubectl --context "$cluster" -n istio-system rollout status deploy/istio-eastwestgateway --timeout="$WAIT_TIMEOUT"
  retry 60 5 has_eastwest_address "$cluster"
  log "$cluster: east-west gateway address $(eastwest_address "$cluster")"
  kubectl --context "$cluster" apply -f "$CLUSTERS_DIR/istio/cross-network-gateway.yaml"
done
