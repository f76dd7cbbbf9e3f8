#!/usr/bin/env bash
# Step 2: two clusters' worth of kubelets and sidecars exhaust the host's
# default inotify limits (pods then fail with "too many open files"). This
# only checks and says what to run; changing host settings is the user's call.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

check_sysctl() {
  local key=$1 want=$2 path have
  path="/proc/sys/${key//.//}"
  if [ ! -r "$path" ]; then
    log "cannot read $key here (not Linux?); on Docker Desktop the VM's defaults usually suffice"
    return 0
  fi
  have="$(cat "$path")"
  if (( have < want )); then
    log "warning: $key is $have, kind with two clusters needs $want: sudo sysctl -w $key=$want"
  else
    log "$key=$have (>= $want)"
  fi
}

check_sysctl fs.inotify.max_user_watches 524288
check_sysctl fs.inotify.max_user_instances 512
