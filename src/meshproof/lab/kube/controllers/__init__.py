"""The lab's kube-controller-manager: Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs,
Endpoints / EndpointSlices (with a kube-proxy at each clusterIP), LoadBalancer addresses and
the node heartbeat.

Namespaces, their ``default`` ServiceAccounts, clusterIP allocation and garbage
collection by ownerReferences are done by the lab's object store itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from meshproof.lab.kube.controllers.daemonsets import DaemonSetController
from meshproof.lab.kube.controllers.deployments import DeploymentController
from meshproof.lab.kube.controllers.endpoints import EndpointsController
from meshproof.lab.kube.controllers.jobs import JobController
from meshproof.lab.kube.controllers.loadbalancer import LoadBalancerController
from meshproof.lab.kube.controllers.nodes import NodeHeartbeat, node_object
from meshproof.lab.kube.controllers.replicasets import ReplicaSetController
from meshproof.lab.kube.controllers.serviceproxy import ServiceProxy
from meshproof.lab.kube.controllers.statefulsets import StatefulSetController
from meshproof.lab.kube.interfaces import ObjectStore

__all__ = [
    "DaemonSetController",
    "DeploymentController",
    "EndpointsController",
    "JobController",
    "LoadBalancerController",
    "NodeHeartbeat",
    "ReplicaSetController",
    "ServiceProxy",
    "StatefulSetController",
    "node_object",
    "start_controllers",
]


def start_controllers(store: ObjectStore, *, cluster: str, node_name: str, zone: str,
                      proxy: ServiceProxy | None) -> list[asyncio.Task[Any]]:
    """Start every controller of one cluster as tasks on the running loop."""
    controllers = [
        DeploymentController(store, cluster=cluster),
        ReplicaSetController(store, cluster=cluster),
        StatefulSetController(store, cluster=cluster),
        JobController(store, cluster=cluster),
        DaemonSetController(store, cluster=cluster, node_name=node_name),
        EndpointsController(store, cluster=cluster, zone=zone, node_name=node_name, proxy=proxy),
        LoadBalancerController(store, cluster=cluster),
    ]
    return [asyncio.create_task(c.run(), name=f"{cluster}/{c.name}") for c in controllers]
