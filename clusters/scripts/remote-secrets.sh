#!/usr/bin/env bash
# Step 9: each istiod watches the other cluster's API server (endpoint
# discovery across clusters). The kubeconfig kind writes points at 127.0.0.1,
# which the other cluster cannot reach, so the secret names the control-plane
# container's address on the `kind` docker network instead.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

for cluster in "${MESH_CLUSTERS[@]}"; do
  other="$(other_of "$cluster")"
  server="https://$(control_plane_ip "$cluster"):6443"
  log "$other: remote secret for $cluster ($server)"
  istioctl create-remote-secret --context "$cluster" --name "$cluster" --server "$server" \
    | kubectl --context "$other" apply -f -
done
