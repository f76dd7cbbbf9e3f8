#!/usr/bin/env bash
# Step 15: the suite's target file for the kind clusters,
# .meshproof/kind/target.yaml (docs/targets.md describes the format).
# MESHPROOF_KIND_ALLOW_FAULTS (comma-separated fault names, default none)
# becomes the blast radius drills may use, in both clusters.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

# The host port each cluster's Prometheus NodePort is mapped to (clusters/kind/<cluster>.yaml).
prometheus_port() {
  case "$1" in
    aws-eks) echo 19090 ;;
    gcp-gke) echo 29090 ;;
  esac
}

faults="[]"
if [ -n "${MESHPROOF_KIND_ALLOW_FAULTS:-}" ]; then
  faults="[$(sed 's/[[:space:]]//g; s/,/, /g' <<<"$MESHPROOF_KIND_ALLOW_FAULTS")]"
fi

target="$KIND_STATE_DIR/target.yaml"
{
  echo "# Written by 'make kind-up' (clusters/scripts/write-target.sh); rewritten on every run."
  echo "name: kind"
  echo "clusters:"
  for cluster in "${MESH_CLUSTERS[@]}"; do
    echo "  - name: $cluster"
    echo "    context: $cluster"
    echo "    kubeconfig: $KUBECONFIG"
    echo "    network: $(network_of "$cluster")"
    echo "    prometheus:"
    echo "      url: http://127.0.0.1:$(prometheus_port "$cluster")"
    echo "    consul:"
    echo "      service: consul-server"
    echo "      namespace: consul"
    echo "      port: 8500"
  done
  echo "namespaces: [sample, production]"
  echo "services:"
  echo "  - {name: helloworld, namespace: sample, port: 5000}"
  echo "  - {name: catalog, namespace: production, port: 5000}"
  echo "  - {name: httpbin, namespace: production, port: 8000}"
  echo "  - {name: api-service, namespace: production, port: 8080}"
  echo "destructive:"
  echo "  allowed:"
  for cluster in "${MESH_CLUSTERS[@]}"; do
    echo "    $cluster: $faults"
  done
} >"$target"
log "wrote $target (export KUBECONFIG=$KUBECONFIG)"
