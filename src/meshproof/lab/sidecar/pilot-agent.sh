#!/bin/sh
# `pilot-agent request GET <path>` inside the lab's istio-proxy container: the proxy's
# admin listens on 127.0.0.1 at the port recorded in its pod directory ($HOME/..).
exec python3 -m meshproof.lab.mesh.pilot_agent --pod-dir "${MESHPROOF_POD_DIR:-$HOME/..}" "$@"
