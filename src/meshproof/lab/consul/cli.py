"""The ``consul`` command inside the lab's ``hashicorp/consul`` containers (stdlib only).

Covers what the runbook runs through ``kubectl exec -n consul consul-server-0 --``:
``members``, ``catalog services|nodes|datacenters``, ``services register|deregister``,
``kv get|put|delete``, ``version``. Output follows hashicorp/consul ``command/``
(``members/members.go`` ``standardOutput``; ``catalog/helpers_ce.go`` ``NodeRow``;
columns joined as ryanuber/columnize does, two spaces, the last column unpadded).
A command real Consul does not have — the runbook's ``consul health service``
among them — prints the top-level help and exits 127, as Consul's CLI library
(mitchellh/cli) does for an unknown subcommand.

The agent address is ``CONSUL_HTTP_ADDR`` or ``-http-addr``; by default the lab
pod's own address (the lab's stand-in for ``127.0.0.1`` inside the pod), port 8500.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TextIO

__all__ = ["TOP_LEVEL_HELP", "columnize", "main"]

VERSION = "1.22.7"

_COMMANDS = {
    "acl": "Interact with Consul's ACLs",
    "agent": "Runs a Consul agent",
    "catalog": "Interact with the catalog",
    "config": "Interact with Consul's Centralized Configurations",
    "connect": "Interact with Consul Connect",
    "debug": "Records a debugging archive for operators",
    "event": "Fire a new event",
    "exec": "Executes a command on Consul nodes",
    "force-leave": 'Forces a member of the cluster to enter the "left" state',
    "info": "Provides debugging information for operators.",
    "intention": "Interact with Connect service intentions",
    "join": "Tell Consul agent to join cluster",
    "keygen": "Generates a new encryption key",
    "keyring": "Manages gossip layer encryption keys",
    "kv": "Interact with the key-value store",
    "leave": "Gracefully leaves the Consul cluster and shuts down",
    "lock": "Execute a command holding a lock",
    "login": "Login to Consul using an auth method",
    "logout": "Destroy a Consul token created with login",
    "maint": "Controls node or service maintenance mode",
    "members": "Lists the members of a Consul cluster",
    "monitor": "Stream logs from a Consul agent",
    "operator": "Provides cluster-level tools for Consul operators",
    "peering": "Create and manage peering connections between Consul clusters",
    "reload": "Triggers the agent to reload configuration files",
    "resource": "Interact with Consul's resources",
    "rtt": "Estimates network round trip time between nodes",
    "services": "Interact with services",
    "snapshot": "Saves, restores and inspects snapshots of Consul server state",
    "tls": "Builtin helpers for creating CAs and certificates",
    "troubleshoot": "CLI tools for troubleshooting Consul service mesh",
    "validate": "Validate config files/directories",
    "version": "Prints the Consul version",
    "watch": "Watch for changes in Consul",
}


def _help() -> str:
    width = max(len(k) for k in _COMMANDS)
    lines = [f"    {k}{' ' * (width - len(k))}    {v}" for k, v in sorted(_COMMANDS.items())]
    return ("Usage: consul [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n"
            + "\n".join(lines) + "\n")


TOP_LEVEL_HELP = _help()
"""What ``consul`` prints for ``--help`` or an unknown command."""


def columnize(rows: list[list[str]]) -> str:
    """Rows as aligned columns: two spaces between, no padding after the last column."""
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    out = []
    for r in rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        out.append("  ".join(cells))
    return "\n".join(out)


class _Failed(Exception):
    pass


class _Client:
    def __init__(self, addr: str) -> None:
        if "://" not in addr:
            addr = "http://" + addr
        self.base = addr.rstrip("/")

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                text = reply.read()
        except urllib.error.HTTPError as exc:
            raise _Failed(f"Unexpected response code: {exc.code} "
                          f"({exc.read().decode(errors='replace')})") from exc
        except (urllib.error.URLError, OSError) as exc:
            host = urllib.parse.urlsplit(self.base).netloc
            reason = getattr(exc, "reason", exc)
            raise _Failed(f'{method.capitalize()} "{self.base}{path}": dial tcp {host}: '
                          f"connect: {getattr(reason, 'strerror', None) or reason}".replace(
                              "Connection refused", "connection refused")) from exc
        return json.loads(text) if text.strip() else None


def _flags(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    flags: dict[str, list[str]] = {}
    rest: list[str] = []
    for a in args:
        if a.startswith("-") and len(a) > 1:
            name, _, value = a.lstrip("-").partition("=")
            flags.setdefault(name, []).append(value if _ else "true")
        else:
            rest.append(a)
    return flags, rest


def _members(c: _Client, flags: dict[str, list[str]], out: TextIO) -> int:
    members = c.call("GET", "/v1/agent/members?segment=_all")
    status = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}
    rows = [["Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Partition",
             "Segment"]]
    for m in sorted(members, key=lambda m: (m["Tags"].get("role") != "consul", m["Name"])):
        tags = m["Tags"]
        server = tags.get("role") == "consul"
        rows.append([m["Name"], f"{m['Addr']}:{m['Port']}", status.get(m["Status"], "none"),
                     "server" if server else "client", tags.get("build", "").split(":")[0],
                     tags.get("vsn", ""), tags.get("dc", ""), tags.get("ap") or "default",
                     "<all>" if server else (tags.get("segment") or "<default>")])
    print(columnize(rows), file=out)
    return 0


def _catalog(c: _Client, args: list[str], out: TextIO, err: TextIO) -> int:
    if not args or args[0] not in ("services", "nodes", "datacenters"):
        print(TOP_LEVEL_HELP if not args else _help(), file=out)
        return 127 if args else 0
    flags, _ = _flags(args[1:])
    if args[0] == "datacenters":
        for dc in c.call("GET", "/v1/catalog/datacenters"):
            print(dc, file=out)
        return 0
    if args[0] == "services":
        services: dict[str, list[str]] = c.call("GET", "/v1/catalog/services")
        if not services:
            print("No services match the given query - try expanding your search.", file=err)
            return 0
        if "tags" in flags:
            print(columnize([[n, ",".join(t)] for n, t in sorted(services.items())]), file=out)
        else:
            for name in sorted(services):
                print(name, file=out)
        return 0
    if "service" in flags:
        name = urllib.parse.quote(flags["service"][-1], safe="")
        entries = c.call("GET", f"/v1/catalog/service/{name}")
        seen: dict[str, dict[str, Any]] = {}
        for e in entries:
            seen.setdefault(e["Node"], {"Node": e["Node"], "ID": e["ID"],
                                        "Address": e["Address"], "Datacenter": e["Datacenter"]})
        nodes = [seen[n] for n in sorted(seen)]
    else:
        nodes = c.call("GET", "/v1/catalog/nodes")
    if not nodes:
        print("No nodes match the given query - try expanding your search.", file=err)
        return 0
    rows = [["Node", "ID", "Address", "DC"]]
    for n in nodes:
        node_id = n.get("ID") or ""
        rows.append([n["Node"], node_id.split("-")[0] if "-" in node_id[1:] else node_id,
                     n["Address"], n["Datacenter"]])
    print(columnize(rows), file=out)
    return 0


def _services(c: _Client, args: list[str], out: TextIO, err: TextIO) -> int:
    if not args or args[0] not in ("register", "deregister"):
        print(TOP_LEVEL_HELP, file=out)
        return 127 if args else 0
    flags, _ = _flags(args[1:])
    if args[0] == "register":
        name = flags.get("name", [""])[-1]
        if not name:
            print("Service name must be specified with the -name flag", file=err)
            return 1
        body = {"Name": name, "ID": flags.get("id", [name])[-1],
                "Address": flags.get("address", [""])[-1],
                "Port": int(flags.get("port", ["0"])[-1] or 0),
                "Tags": flags.get("tag", []),
                "Meta": dict(m.split("=", 1) for m in flags.get("meta", []) if "=" in m)}
        try:
            c.call("PUT", "/v1/agent/service/register", body)
        except _Failed as exc:
            print(f"Error registering service {name!r}: {exc}", file=err)
            return 1
        print(f"Registered service: {name}", file=out)
        return 0
    sid = flags.get("id", [""])[-1]
    if not sid:
        print("Either a service ID or a config file must be specified", file=err)
        return 1
    try:
        c.call("PUT", f"/v1/agent/service/deregister/{urllib.parse.quote(sid, safe='')}")
    except _Failed as exc:
        print(f"Error deregistering service {sid!r}: {exc}", file=err)
        return 1
    print(f"Deregistered service: {sid}", file=out)
    return 0


def _kv(c: _Client, args: list[str], out: TextIO, err: TextIO) -> int:
    if len(args) < 2 or args[0] not in ("get", "put", "delete"):
        print(TOP_LEVEL_HELP, file=out)
        return 127 if args else 0
    key = urllib.parse.quote(args[1], safe="/")
    if args[0] == "put":
        value = args[2] if len(args) > 2 else ""
        c.call("PUT", f"/v1/kv/{key}", raw=value.encode())
        print(f"Success! Data written to: {args[1]}", file=out)
        return 0
    if args[0] == "delete":
        c.call("DELETE", f"/v1/kv/{key}")
        print(f"Success! Deleted key: {args[1]}", file=out)
        return 0
    try:
        entries = c.call("GET", f"/v1/kv/{key}")
    except _Failed as exc:
        if "404" in str(exc):
            print(f"Error! No key exists at: {args[1]}", file=err)
            return 1
        raise
    value = entries[0].get("Value")
    print(base64.b64decode(value).decode(errors="replace") if value else "", file=out)
    return 0


def main(argv: list[str], *, env: dict[str, str] | None = None, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    """Run one ``consul`` command; returns its exit code."""
    env = dict(os.environ if env is None else env)
    out = out or sys.stdout
    err = err or sys.stderr
    flags, _ = _flags([a for a in argv if a.startswith("-http-addr")])
    args = [a for a in argv if not a.startswith("-http-addr")]
    addr = (flags.get("http-addr") or [""])[-1] or env.get("CONSUL_HTTP_ADDR") or (
        f"{env.get('MESHPROOF_LAB_POD_IP') or '127.0.0.1'}:8500")
    client = _Client(addr)
    if not args or args[0] in ("-h", "--help", "-help"):
        print(TOP_LEVEL_HELP, file=out)
        return 0 if args else 127
    if args[0] in ("version", "-v", "--version", "-version"):
        print(f"Consul v{VERSION}\nRevision lab\nBuild Date 2026-01-01T00:00:00Z\n"
              "Protocol 2 spoken by default, understands 2 to 3 (agent will automatically use "
              "protocol >2 when speaking to compatible agents)", file=out)
        return 0
    try:
        if args[0] == "members":
            return _members(client, _flags(args[1:])[0], out)
        if args[0] == "catalog":
            return _catalog(client, args[1:], out, err)
        if args[0] == "services":
            return _services(client, args[1:], out, err)
        if args[0] == "kv":
            return _kv(client, args[1:], out, err)
    except _Failed as exc:
        what = {"members": "Error retrieving members", "catalog": "Error listing",
                "kv": "Error querying Consul agent"}.get(args[0], "Error")
        print(f"{what}: {exc}", file=err)
        return 1
    print(TOP_LEVEL_HELP, file=out)
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
