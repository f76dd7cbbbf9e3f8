"""The lab's Consul: servers, catalog sync from Kubernetes, the ``consul`` CLI, the chart's objects.

Layout decision — one Consul datacenter per cluster, not federated (README.md):
the kind bootstrap installs the chart in each cluster with
``--set global.datacenter=<cluster>`` and no WAN federation (the chart allows it
only with TLS and Connect mesh gateways, which ``clusters/consul/values.yaml``
turns off), and the suite reads each cluster's Consul through that cluster's API
server. So ``aws-eks``'s Consul holds ``aws-eks``'s services at their 127.1.x.x pod
IPs and ``gcp-gke``'s holds 127.2.x.x; together they cover both clusters.

Modules: :mod:`.install` (the chart's objects), :mod:`.server` / :mod:`.agent` /
:mod:`.election` / :mod:`.httpapi` / :mod:`.state` (``hashicorp/consul``),
:mod:`.sync` / :mod:`.registrations` (``hashicorp/consul-k8s-control-plane
sync-catalog``), :mod:`.cli` (``consul`` in the server container), :mod:`.control`
(the ``consul-stale`` break switch), :mod:`.image` (image registrations).

Importing this package is cheap and stdlib-only (the CLI runs on a bare interpreter).
"""

from __future__ import annotations

__all__: list[str] = []
