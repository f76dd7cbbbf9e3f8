#!/usr/bin/env bash
# Step 14: everything the suite talks to is Ready: every Deployment in the
# namespaces under test, the gateways, Prometheus and the Consul server.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

for cluster in "${MESH_CLUSTERS[@]}"; do
  log "$cluster: waiting for readiness (each wait up to $WAIT_TIMEOUT)"
  for ns in sample production; do
    kubectl --context "$cluster" -n "$ns" wait --for=condition=Available deploy --all --timeout="$WAIT_TIMEOUT"
  done
  for deploy in istiod istio-ingressgateway istio-eastwestgateway prometheus; do
    kubectl --context "$cluster" -n istio-system rollout status "deploy/$deploy" --timeout="$WAIT_TIMEOUT"
  done
  kubectl --context "$cluster" -n consul rollout status statefulset/consul-server --timeout="$WAIT_TIMEOUT"
  kubectl --context "$cluster" -n istio-system wait --for=condition=Ready certificate/tls-cert --timeout="$WAIT_TIMEOUT"
done
log "both clusters ready"
