#!/usr/bin/env bash
# Step 4: MetalLB (what Istio's own kind CI uses) so LoadBalancer Services get
# addresses: one range per cluster, carved from the end of the `kind` docker
# network's IPv4 subnet, where docker does not place containers.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

subnet="$(docker network inspect kind --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}' \
  | tr ' ' '\n' | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/' | head -n 1)"
[ -n "$subnet" ] || die "the docker network 'kind' has no IPv4 subnet"

index=0
for cluster in "${MESH_CLUSTERS[@]}"; do
  range="$(lb_address_range "$subnet" "$index")"
  index=$((index + 1))
  log "$cluster: MetalLB $METALLB_VERSION, LoadBalancer range $range (from $subnet)"
  kubectl --context "$cluster" apply -f "$METALLB_MANIFEST_URL"
  kubectl --context "$cluster" -n metallb-system rollout status deploy/controller --timeout="$WAIT_TIMEOUT"
  kubectl --context "$cluster" -n metallb-system rollout status ds/speaker --timeout="$WAIT_TIMEOUT"
  # kind labels its control-plane node as excluded from external load
  # balancers, and MetalLB's L2 speaker honours that; a one-node cluster
  # would then never announce its addresses.
  kubectl --context "$cluster" label node "$cluster-control-plane" \
    node.kubernetes.io/exclude-from-external-load-balancers- >/dev/null
  # The pool is validated by MetalLB's webhook, which may lag its rollout.
  pool="$KIND_STATE_DIR/metallb-pool-$cluster.yaml"
  sed "s|@ADDRESS_RANGE@|$range|" "$CLUSTERS_DIR/metallb/address-pool.template.yaml" >"$pool"
  retry 12 5 kubectl --context "$cluster" apply -f "$pool"
done
