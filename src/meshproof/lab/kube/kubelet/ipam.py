"""Loopback addresses for pods and services, one /16 of 127.0.0.0/8 per cluster and use."""

from __future__ import annotations

from meshproof.errors import LabError

__all__ = ["AddressPool"]


class AddressPool:
    """Hands out ``<prefix>.x.y`` addresses (x 0..255, y 1..254), lowest free first.

    Linux routes all of 127.0.0.0/8 to ``lo``, so any of them can be bound without setup.
    """

    def __init__(self, prefix: str, *, reserved: tuple[str, ...] = (), start: int = 0) -> None:
        """``start`` is where the round-robin begins (a lab picks it at random, so that two
        labs on one machine rarely hand out the same address)."""
        self.prefix = prefix
        self._used: set[str] = set(reserved)
        self._next = start % (256 * 254)

    def _nth(self, n: int) -> str:
        return f"{self.prefix}.{n // 254}.{n % 254 + 1}"

    def allocate(self, wanted: str | None = None) -> str:
        """A free address (``wanted`` when given and free); raises ``LabError`` when exhausted."""
        if wanted:
            if wanted in self._used or not wanted.startswith(self.prefix + "."):
                raise LabError(f"address {wanted} is taken or outside {self.prefix}.0.0/16")
            self._used.add(wanted)
            return wanted
        total = 256 * 254
        for i in range(total):
            addr = self._nth((self._next + i) % total)
            if addr not in self._used:
                self._used.add(addr)
                # Round-robin, so a freed address is not handed out again at once (like a real CNI).
                self._next = (self._next + i + 1) % total
                return addr
        raise LabError(f"address pool {self.prefix}.0.0/16 is exhausted")

    def release(self, addr: str) -> None:
        self._used.discard(addr)

    def in_use(self, addr: str) -> bool:
        return addr in self._used
