#!/usr/bin/env bash
# Step 10: cert-manager, its ingress CA issuer and the ingress certificate
# tls-cert (clusters/cert-manager/) in each cluster.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

for cluster in "${MESH_CLUSTERS[@]}"; do
  log "$cluster: cert-manager $CERT_MANAGER_VERSION"
  kubectl --context "$cluster" apply -f "$CERT_MANAGER_MANIFEST_URL"
  for deploy in cert-manager cert-manager-cainjector cert-manager-webhook; do
    kubectl --context "$cluster" -n cert-manager rollout status "deploy/$deploy" --timeout="$WAIT_TIMEOUT"
  done
  # Issuers are admitted by cert-manager's webhook, which may lag its rollout.
  retry 12 5 kubectl --context "$cluster" apply -f "$CLUSTERS_DIR/cert-manager/ingress-ca.yaml"
  kubectl --context "$cluster" -n cert-manager wait --for=condition=Ready \
    certificate/meshproof-ingress-ca --timeout="$WAIT_TIMEOUT"
  kubectl --context "$cluster" apply -f "$CLUSTERS_DIR/cert-manager/tls-cert.yaml"
  kubectl --context "$cluster" -n istio-system wait --for=condition=Ready \
    certificate/tls-cert --timeout="$WAIT_TIMEOUT"
done
