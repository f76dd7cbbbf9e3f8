"""A destructive activity for the safety tests, run as a subprocess (so it can be killed).

    python tests/safety/drive_changes.py --target FILE --run-id ID --plan mesh|bare
        [--seed N] [--steps N] [--namespace NS] [--dry-run] [--hold]

It goes through ``meshproof.safety.destructive_run`` exactly as a drill does:
blast radius, run lock, sweep, one ``Changes`` per cluster, undo on the way
out. It prints ``start``, then ``applied K <what>`` after each change, ``done``
after the last, and ``undone`` once everything was taken back; ``--hold`` waits
for a signal after ``done`` (at most 5 minutes). A ``MeshproofError`` is one line on stderr and exit
2, as the CLI does it.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading

from meshproof.connections import open_connections
from meshproof.errors import MeshproofError
from meshproof.safety import Changes, destructive_run
from meshproof.target import load_target

# (fault, cluster-independent change) of each plan; the fault names are what the test
# targets allow.
MESH_FAULTS = ("eastwest-gateway-loss", "istiod-outage", "cross-cluster-latency",
               "backup-restore", "probe-namespace")
BARE_FAULTS = ("app-loss", "config-change", "config-loss", "probe-namespace")
GATEWAY = ("istio-system", "istio-eastwestgateway")
ISTIOD = ("istio-system", "istiod")
ROUTE = "/apis/networking.istio.io/v1/namespaces/production/virtualservices/catalog"
RULE = "/apis/networking.istio.io/v1/namespaces/sample/destinationrules/helloworld"


def _with_delay(changes: Changes) -> str:
    routes = changes.api.get(ROUTE)["spec"]["http"]
    delayed = [{**route, "fault": {"delay": {"percentage": {"value": 100.0},
                                             "fixedDelay": "0.3s"}}} for route in routes]
    changes.patch(ROUTE, {"spec": {"http": delayed}})
    return "delay fault on virtualservice production/catalog"


def _mesh_change(fault: str, changes: Changes, run_id: str) -> str:
    if fault == "eastwest-gateway-loss":
        changes.scale(*GATEWAY, 0)
        return "east-west gateway scaled to 0"
    if fault == "istiod-outage":
        changes.scale(*ISTIOD, 0)
        return "istiod scaled to 0"
    if fault == "cross-cluster-latency":
        return _with_delay(changes)
    if fault == "backup-restore":
        changes.delete(RULE)
        return "destinationrule sample/helloworld deleted"
    return _namespace(changes, run_id)


def _namespace(changes: Changes, run_id: str) -> str:
    name = f"meshproof-probe-{run_id}"
    changes.create({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": {"istio-injection": "enabled"}}})
    return f"namespace {name} created"


def _bare_change(fault: str, changes: Changes, run_id: str, namespace: str) -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    if fault == "app-loss":
        changes.scale(namespace, "app", 0)
        return "deployment app scaled to 0"
    if fault == "config-change":
        changes.patch(f"{base}/settings", {"data": {"mode": "broken", "added": "1"}})
        return "configmap settings patched"
    if fault == "config-loss":
        changes.delete(f"{base}/spare")
        return "configmap spare deleted"
    return _namespace(changes, run_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--plan", choices=("mesh", "bare"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--namespace", default="")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--hold", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    try:
        target = load_target(args.target)
        faults = MESH_FAULTS if args.plan == "mesh" else BARE_FAULTS
        # Each fault at most once per cluster: a sequence is a random choice of distinct
        # (cluster, fault) pairs, in random order.
        pairs = [(c, f) for c in target.cluster_names for f in faults]
        chosen = rng.sample(pairs, min(args.steps, len(pairs)))
        plan: dict[str, list[str]] = {}
        for cluster, fault in chosen:
            plan.setdefault(cluster, []).append(fault)
        apis = open_connections(target).apis
        print("start", flush=True)
        with destructive_run(target, apis, args.run_id, plan, dry_run=args.dry_run,
                             out=sys.stdout) as changes:
            for k, (cluster, fault) in enumerate(chosen, 1):
                what = (_mesh_change(fault, changes[cluster], args.run_id)
                        if args.plan == "mesh" else
                        _bare_change(fault, changes[cluster], args.run_id, args.namespace))
                print(f"applied {k} {cluster}: {what}", flush=True)
            print("done", flush=True)
            if args.hold:
                threading.Event().wait(timeout=300)  # until a signal stops the run
        print("undone", flush=True)
    except MeshproofError as exc:
        print(f"meshproof: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); rollbacks ran", flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

