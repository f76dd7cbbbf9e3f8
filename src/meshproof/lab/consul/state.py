"""The state one Consul datacenter holds: nodes, services, checks and KV, with raft-like indexes.

Pure data and logic (no I/O), so that the server program, its replication and the
unit tests share it. Writes follow the semantics of Consul's catalog endpoints
(hashicorp/consul ``agent/consul/state/catalog.go``): a registration creates or
updates the node, then the service, then the checks; re-registering identical
content does not bump any index, so blocking queries only wake on real change.
Every change gets the next global index; ``CreateIndex`` / ``ModifyIndex`` of the
objects it touched say when.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CatalogState", "RegistrationError", "canonical", "check_status_rank"]

Obj = dict[str, Any]

_STATUS_RANK = {"passing": 0, "warning": 1, "critical": 2, "maintenance": 3}


def check_status_rank(status: str) -> int:
    """Order of health states, worst last (Consul's aggregation order)."""
    return _STATUS_RANK.get(status, 2)


class RegistrationError(ValueError):
    """A catalog write Consul would refuse with HTTP 400."""


def _service_ports(value: Any) -> list[Obj]:
    """A service's ``Ports`` (Consul ≥ 1.22 ``ServicePorts``): ``{"Name", "Port", "Default"}``
    per port, as consul-k8s ≥ 1.9 catalog sync registers them (hashicorp/consul-k8s
    ``control-plane/catalog/to-consul/resource.go``; the JSON shape as hashicorp/consul issue
    #23815 shows it)."""
    return [{"Name": str(p.get("Name") or ""), "Port": int(p.get("Port") or 0),
             "Default": bool(p.get("Default", False))}
            for p in value or [] if isinstance(p, dict)]


_FIELDS = ("Node", "Address", "ID", "Datacenter", "TaggedAddresses", "NodeMeta", "Service",
           "Check", "Checks", "SkipNodeUpdate", "ServiceID", "CheckID", "Name", "Tags", "Meta",
           "Port", "Ports", "Default", "Weights", "EnableTagOverride", "Status", "Notes",
           "Output", "Type", "Kind", "Namespace", "Partition")
_BY_LOWER = {f.lower(): f for f in _FIELDS}
_NESTED = ("Service", "Check")
_USER_MAPS = ("Meta", "NodeMeta", "TaggedAddresses", "Weights")


def canonical(body: Any) -> Any:
    """Field names as Consul's Go structs spell them: its JSON decoding ignores case."""
    if not isinstance(body, dict):
        return body
    out: Obj = {}
    for key, value in body.items():
        name = _BY_LOWER.get(str(key).lower(), str(key))
        if name in _NESTED:
            value = canonical(value)
        elif name in ("Checks", "Ports") and isinstance(value, list):
            value = [canonical(v) for v in value]
        elif name not in _USER_MAPS and isinstance(value, dict):
            value = canonical(value)
        out[name] = value
    return out


def _proxy() -> Obj:
    return {"Mode": "", "MeshGateway": {}, "Expose": {}}


@dataclass
class CatalogState:
    """One datacenter's catalog and KV store."""

    datacenter: str
    index: int = 1
    nodes: dict[str, Obj] = field(default_factory=dict)
    services: dict[str, dict[str, Obj]] = field(default_factory=dict)
    """node name → service ID → service (agent-service shape plus indexes)."""
    checks: dict[str, dict[str, Obj]] = field(default_factory=dict)
    """node name → check ID → check."""
    kv: dict[str, Obj] = field(default_factory=dict)

    # -- persistence and replication ---------------------------------------------------
    def snapshot(self) -> Obj:
        """Everything, as JSON-able data (what a follower or the data dir keeps)."""
        return {"datacenter": self.datacenter, "index": self.index,
                "nodes": self.nodes, "services": self.services, "checks": self.checks,
                "kv": self.kv}

    @classmethod
    def restore(cls, data: Obj) -> CatalogState:
        return cls(datacenter=str(data["datacenter"]), index=int(data["index"]),
                   nodes=copy.deepcopy(data.get("nodes") or {}),
                   services=copy.deepcopy(data.get("services") or {}),
                   checks=copy.deepcopy(data.get("checks") or {}),
                   kv=copy.deepcopy(data.get("kv") or {}))

    # -- writes --------------------------------------------------------------------------
    def _bump(self) -> int:
        self.index += 1
        return self.index

    def _upsert(self, table: dict[str, Obj], key: str, content: Obj) -> bool:
        """Store ``content`` under ``key`` with indexes; False when nothing changed."""
        old = table.get(key)
        if old is not None:
            same = {k: v for k, v in old.items() if k not in ("CreateIndex", "ModifyIndex")}
            if same == content:
                return False
            idx = self._bump()
            table[key] = dict(content, CreateIndex=old["CreateIndex"], ModifyIndex=idx)
        else:
            idx = self._bump()
            table[key] = dict(content, CreateIndex=idx, ModifyIndex=idx)
        return True

    def register(self, body: Obj) -> bool:
        """``PUT /v1/catalog/register``; True when something changed."""
        body = canonical(body)
        node = str(body.get("Node") or "")
        address = str(body.get("Address") or "")
        if not node or not address:
            raise RegistrationError("Must provide node and address")
        service = body.get("Service")
        checks = list(body.get("Checks") or [])
        if body.get("Check"):
            checks.insert(0, body["Check"])
        # Validate before writing, as Consul does: a refused registration changes nothing.
        new_sid = str(service.get("ID") or service.get("Service") or "") if service else ""
        for check in checks:
            sid = str(check.get("ServiceID") or "")
            if sid and sid != new_sid and sid not in self.services.get(node, {}):
                cid = check.get("CheckID") or check.get("Name") or ""
                raise RegistrationError(f'Unknown service ID "{sid}" for check ID "{cid}"')
        changed = False
        existing = self.nodes.get(node)
        if existing is None or not body.get("SkipNodeUpdate"):
            content = {
                "ID": str(body.get("ID") or (existing or {}).get("ID") or ""),
                "Node": node, "Address": address, "Datacenter": self.datacenter,
                "TaggedAddresses": body.get("TaggedAddresses") or (
                    (existing or {}).get("TaggedAddresses")),
                "Meta": dict(body.get("NodeMeta") or {}),
            }
            changed |= self._upsert(self.nodes, node, content)
        if service:
            changed |= self._put_service(node, service)
        for check in checks:
            changed |= self._put_check(node, check)
        return changed

    def _put_service(self, node: str, service: Obj) -> bool:
        name = str(service.get("Service") or "")
        if not name:
            raise RegistrationError("Must provide service name with ID")
        sid = str(service.get("ID") or name)
        content = {
            "ID": sid, "Service": name, "Tags": list(service.get("Tags") or []),
            "Address": str(service.get("Address") or ""),
            "Meta": dict(service.get("Meta") or {}),
            "Port": int(service.get("Port") or 0),
            "Ports": _service_ports(service.get("Ports")),
            "Weights": service.get("Weights") or {"Passing": 1, "Warning": 1},
            "EnableTagOverride": bool(service.get("EnableTagOverride", False)),
        }
        return self._upsert(self.services.setdefault(node, {}), sid, content)

    def _put_check(self, node: str, check: Obj) -> bool:
        cid = str(check.get("CheckID") or check.get("Name") or "")
        if not cid:
            raise RegistrationError("Must provide check name or ID")
        sid = str(check.get("ServiceID") or "")
        svc = self.services.get(node, {}).get(sid) if sid else None
        if sid and svc is None:
            raise RegistrationError(f'Unknown service ID "{sid}" for check ID "{cid}"')
        content: Obj = {
            "Node": node, "CheckID": cid, "Name": str(check.get("Name") or cid),
            "Status": str(check.get("Status") or "critical"),
            "Notes": str(check.get("Notes") or ""), "Output": str(check.get("Output") or ""),
            "ServiceID": sid, "ServiceName": svc["Service"] if svc else "",
            "ServiceTags": list(svc["Tags"]) if svc else [],
            "Type": str(check.get("Type") or ""),
            "Interval": "", "Timeout": "", "ExposedPort": 0, "Definition": {},
        }
        return self._upsert(self.checks.setdefault(node, {}), cid, content)

    def deregister(self, body: Obj) -> bool:
        """``PUT /v1/catalog/deregister``: a node, one of its services, or one check."""
        body = canonical(body)
        node = str(body.get("Node") or "")
        if not node:
            raise RegistrationError("Must provide node")
        if node not in self.nodes:
            return False
        if body.get("ServiceID"):
            sid = str(body["ServiceID"])
            if self.services.get(node, {}).pop(sid, None) is None:
                return False
            for cid in [c for c, chk in self.checks.get(node, {}).items()
                        if chk["ServiceID"] == sid]:
                del self.checks[node][cid]
        elif body.get("CheckID"):
            if self.checks.get(node, {}).pop(str(body["CheckID"]), None) is None:
                return False
        else:
            del self.nodes[node]
            self.services.pop(node, None)
            self.checks.pop(node, None)
        self._bump()
        return True

    def kv_put(self, key: str, value: bytes, flags: int = 0) -> bool:
        content = {"LockIndex": 0, "Key": key, "Flags": flags,
                   "Value": base64.b64encode(value).decode() if value else None}
        return self._upsert(self.kv, key, content) or True

    def kv_delete(self, key: str, *, recurse: bool = False) -> bool:
        doomed = [k for k in self.kv if k.startswith(key)] if recurse else (
            [key] if key in self.kv else [])
        for k in doomed:
            del self.kv[k]
        if doomed:
            self._bump()
        return True

    # -- reads ---------------------------------------------------------------------------
    def kv_get(self, key: str, *, recurse: bool = False) -> list[Obj]:
        if recurse:
            return [copy.deepcopy(self.kv[k]) for k in sorted(self.kv) if k.startswith(key)]
        return [copy.deepcopy(self.kv[key])] if key in self.kv else []

    def kv_keys(self, prefix: str, separator: str = "") -> list[str]:
        keys: set[str] = set()
        for k in self.kv:
            if not k.startswith(prefix):
                continue
            rest = k[len(prefix):]
            if separator and separator in rest:
                keys.add(prefix + rest[: rest.index(separator) + len(separator)])
            else:
                keys.add(k)
        return sorted(keys)

    def node_view(self, name: str) -> Obj:
        n = self.nodes[name]
        return {"ID": n["ID"], "Node": n["Node"], "Address": n["Address"],
                "Datacenter": n["Datacenter"], "TaggedAddresses": n["TaggedAddresses"],
                "Meta": n["Meta"], "CreateIndex": n["CreateIndex"],
                "ModifyIndex": n["ModifyIndex"]}

    @staticmethod
    def agent_service_view(svc: Obj) -> Obj:
        """A service as ``/v1/catalog/node/<n>`` and ``/v1/health/service`` show it."""
        return {"ID": svc["ID"], "Service": svc["Service"], "Tags": list(svc["Tags"]),
                "Address": svc["Address"], "Meta": dict(svc["Meta"]), "Port": svc["Port"],
                **({"Ports": copy.deepcopy(svc["Ports"])} if svc.get("Ports") else {}),
                "Weights": svc["Weights"], "EnableTagOverride": svc["EnableTagOverride"],
                "Proxy": _proxy(), "Connect": {}, "PeerName": "",
                "CreateIndex": svc["CreateIndex"], "ModifyIndex": svc["ModifyIndex"]}

    def services_summary(self) -> dict[str, list[str]]:
        """``/v1/catalog/services``: name → the union of its instances' tags."""
        out: dict[str, set[str]] = {}
        for per_node in self.services.values():
            for svc in per_node.values():
                out.setdefault(svc["Service"], set()).update(svc["Tags"])
        return {name: sorted(tags) for name, tags in sorted(out.items())}

    def _instances(self, name: str, tags: list[str]) -> list[tuple[str, Obj]]:
        found = []
        for node in sorted(self.services):
            for sid in sorted(self.services[node]):
                svc = self.services[node][sid]
                if svc["Service"] == name and all(t in svc["Tags"] for t in tags):
                    found.append((node, svc))
        return found

    def service_nodes(self, name: str, tags: list[str] | None = None) -> list[Obj]:
        """``/v1/catalog/service/<name>``."""
        out = []
        for node, svc in self._instances(name, tags or []):
            n = self.nodes[node]
            out.append({
                "ID": n["ID"], "Node": node, "Address": n["Address"],
                "Datacenter": self.datacenter, "TaggedAddresses": n["TaggedAddresses"],
                "NodeMeta": n["Meta"], "ServiceKind": "", "ServiceID": svc["ID"],
                "ServiceName": svc["Service"], "ServiceTags": list(svc["Tags"]),
                "ServiceAddress": svc["Address"], "ServiceWeights": svc["Weights"],
                "ServiceMeta": dict(svc["Meta"]), "ServicePort": svc["Port"],
                **({"ServicePorts": copy.deepcopy(svc["Ports"])} if svc.get("Ports") else {}),
                "ServiceSocketPath": "", "ServiceEnableTagOverride": svc["EnableTagOverride"],
                "ServiceProxy": _proxy(), "ServiceConnect": {}, "ServiceLocality": None,
                "CreateIndex": svc["CreateIndex"], "ModifyIndex": svc["ModifyIndex"],
            })
        return out

    def health_service(self, name: str, *, passing: bool = False,
                       tags: list[str] | None = None) -> list[Obj]:
        """``/v1/health/service/<name>``: instances with their node's and their own checks."""
        out = []
        for node, svc in self._instances(name, tags or []):
            checks = [copy.deepcopy(c) for c in self.checks.get(node, {}).values()
                      if c["ServiceID"] in ("", svc["ID"])]
            if passing and any(c["Status"] != "passing" for c in checks):
                continue
            out.append({"Node": self.node_view(node),
                        "Service": self.agent_service_view(svc), "Checks": checks})
        return out

    def checks_in_state(self, state: str) -> list[Obj]:
        """``/v1/health/state/<state>`` (``any`` = every check)."""
        return [copy.deepcopy(c) for node in sorted(self.checks)
                for c in self.checks[node].values() if state == "any" or c["Status"] == state]

    def service_checks(self, name: str) -> list[Obj]:
        """``/v1/health/checks/<service>``."""
        return [copy.deepcopy(c) for node in sorted(self.checks)
                for c in self.checks[node].values() if c["ServiceName"] == name]

    def node_checks(self, node: str) -> list[Obj]:
        return [copy.deepcopy(c) for c in self.checks.get(node, {}).values()]

    def node_services(self, node: str) -> Obj | None:
        """``/v1/catalog/node/<node>`` (None: no such node)."""
        if node not in self.nodes:
            return None
        return {"Node": self.node_view(node),
                "Services": {sid: self.agent_service_view(svc)
                             for sid, svc in sorted(self.services.get(node, {}).items())}}

    def node_list(self) -> list[Obj]:
        return [self.node_view(n) for n in sorted(self.nodes)]
