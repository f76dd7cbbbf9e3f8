"""``--connect-to`` for the ingress locustfile: where to connect, separately from the URL.

The ingress gateway is addressed by name (``https://api.example.com``: the Host
header, the TLS SNI and the certificate check all use it) but reached at an
address the target gives (a load balancer IP, or a lab loopback address), as
``curl --connect-to`` does. Entries, comma-separated:

- ``ADDR``: every URL port goes to ``ADDR`` at the same port;
- ``ADDR:PORT``: every URL port goes to ``ADDR:PORT``;
- ``URLPORT:ADDR:PORT``: only URLs on ``URLPORT`` (e.g. ``80:127.1.0.50:8080``).

A specific ``URLPORT`` entry wins over a catch-all one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meshproof.errors import ConfigError

__all__ = ["ConnectTo", "parse_connect_to"]


@dataclass(frozen=True, slots=True)
class ConnectTo:
    """Where requests for a URL port are sent."""

    default_host: str | None = None
    """The catch-all address (``None``: connect to the URL's own host)."""
    default_port: int | None = None
    """The catch-all port (``None``: the URL's own port)."""
    by_url_port: dict[int, tuple[str, int]] = field(default_factory=dict)
    """Specific entries: URL port -> (address, port)."""

    def address_for(self, host: str, port: int) -> tuple[str, int]:
        """The address to connect to for a URL on ``host:port``."""
        if port in self.by_url_port:
            return self.by_url_port[port]
        return (self.default_host or host, self.default_port or port)


def _port(text: str, spec: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 < value < 65536:
        raise ConfigError(f"--connect-to {spec!r}: {text!r} is not a port")
    return value


def parse_connect_to(spec: str) -> ConnectTo:
    """Parse a ``--connect-to`` value (empty: no redirection)."""
    default_host: str | None = None
    default_port: int | None = None
    by_url_port: dict[int, tuple[str, int]] = {}
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        parts = entry.split(":")
        if any(not p for p in parts) or len(parts) > 3:
            raise ConfigError(
                f"--connect-to {spec!r}: bad entry {entry!r} (ADDR, ADDR:PORT or URLPORT:ADDR:PORT)"
            )
        if len(parts) == 3:
            by_url_port[_port(parts[0], spec)] = (parts[1], _port(parts[2], spec))
        else:
            default_host = parts[0]
            default_port = _port(parts[1], spec) if len(parts) == 2 else None
    return ConnectTo(default_host=default_host, default_port=default_port, by_url_port=by_url_port)
