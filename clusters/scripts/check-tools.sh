#!/usr/bin/env bash
# Step 1: every tool kind-up needs is present, one line each naming the
# version expected; stops before anything is created if one is missing.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

missing=0
# check TOOL EXPECTED VERSION-COMMAND...
check() {
  local tool=$1 expected=$2
  shift 2
  if ! command -v "$tool" >/dev/null 2>&1; then
    printf 'kind: missing %-9s expected %s\n' "$tool" "$expected" >&2
    missing=1
    return 0
  fi
  local found
  found="$("$@" 2>/dev/null | head -n 1 || true)"
  printf 'kind: found   %-9s %s (expected %s)\n' "$tool" "${found:-unknown version}" "$expected"
}

check docker "Docker 24+ with a running daemon" docker version --format '{{.Server.Version}}'
check kind "$KIND_VERSION (node image $KIND_NODE_IMAGE)" kind version
check kubectl "$KUBECTL_VERSIONS" kubectl version --client
check helm "$HELM_VERSIONS" helm version --short
check istioctl "$ISTIO_VERSION (same minor as the control plane it installs)" istioctl version --remote=false
[ "$missing" -eq 0 ] || die "install the missing tools above and run 'make kind-up' again"

docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer ('docker info' fails)"

istio_minor="${ISTIO_VERSION%.*}"
istioctl version --remote=false 2>/dev/null | grep -q "^${istio_minor}\." \
  || die "istioctl is not $istio_minor.x; get it with: curl -sL https://istio.io/downloadIstio | ISTIO_VERSION=$ISTIO_VERSION sh -"

"$MESHPROOF_PYTHON" -c 'import meshproof.pki' 2>/dev/null \
  || die "$MESHPROOF_PYTHON cannot import meshproof.pki; run 'make venv' first"
log "tools ok"
