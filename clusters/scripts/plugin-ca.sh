#!/usr/bin/env bash
# Step 6: one root CA shared by both clusters and an intermediate per cluster
# (python -m meshproof.pki), installed as Istio's plug-in CA secret `cacerts`,
# so workloads of both clusters trust each other. The root is reused on re-runs.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

ca_dir="$KIND_STATE_DIR/ca"
clusters_csv="$(IFS=,; echo "${MESH_CLUSTERS[*]}")"
"$MESHPROOF_PYTHON" -m meshproof.pki --out "$ca_dir" --clusters "$clusters_csv"
for cluster in "${MESH_CLUSTERS[@]}"; do
  log "$cluster: secret istio-system/cacerts"
  kubectl --context "$cluster" -n istio-system create secret generic cacerts \
    --from-file=ca-cert.pem="$ca_dir/$cluster/ca-cert.pem" \
    --from-file=ca-key.pem="$ca_dir/$cluster/ca-key.pem" \
    --from-file=root-cert.pem="$ca_dir/$cluster/root-cert.pem" \
    --from-file=cert-chain.pem="$ca_dir/$cluster/cert-chain.pem" \
    --dry-run=client -o yaml | kubectl --context "$cluster" apply -f -
done
