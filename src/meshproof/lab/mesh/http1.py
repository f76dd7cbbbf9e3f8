"""Just enough HTTP/1.1 for the proxy: read and write whole messages on asyncio streams.

Bodies are read completely (Content-Length, chunked, or until close for a
response without either) and re-sent with a Content-Length; the lab's
messages are small, and whole messages keep retries and fault injection simple.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = [
    "REASONS",
    "Headers",
    "HttpParseError",
    "Request",
    "Response",
    "read_request",
    "read_response",
]

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class HttpParseError(Exception):
    """The peer sent something that is not HTTP/1.x."""


class Headers:
    """An ordered, case-insensitive multi-map of header fields."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for k, v in self._items:
            if k.lower() == low:
                return v
        return default

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self._items.append((name, value))

    def add(self, name: str, value: str) -> None:
        self._items.append((name, value))

    def remove(self, name: str) -> None:
        low = name.lower()
        self._items = [(k, v) for k, v in self._items if k.lower() != low]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def copy(self) -> Headers:
        return Headers(self._items)

    def encode(self) -> bytes:
        return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in self._items)


@dataclass(slots=True)
class Request:
    method: str
    target: str
    """As received: absolute-form (``http://host:port/path``) or origin-form (``/path``)."""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = "HTTP/1.1"

    @property
    def path(self) -> str:
        """The origin-form path and query."""
        if self.target.startswith("/"):
            return self.target
        parts = urlsplit(self.target)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    @property
    def authority(self) -> str:
        """``host[:port]`` from an absolute-form target, else the Host header."""
        if not self.target.startswith("/") and "://" in self.target:
            return urlsplit(self.target).netloc
        return self.headers.get("host", "") or ""

    @property
    def keep_alive(self) -> bool:
        conn = (self.headers.get("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def encode(self) -> bytes:
        """Origin-form request with a Content-Length body."""
        headers = self.headers.copy()
        headers.remove("transfer-encoding")
        headers.remove("proxy-connection")
        headers.remove("expect")  # the whole body is already here
        if self.body or self.method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            headers.set("content-length", str(len(self.body)))
        else:
            headers.remove("content-length")
        head = f"{self.method} {self.path} HTTP/1.1\r\n".encode("latin-1")
        return head + headers.encode() + b"\r\n" + self.body


@dataclass(slots=True)
class Response:
    status: int
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    reason: str = ""
    reusable: bool = True
    """False when the body ran until the connection closed."""

    def encode(self, *, head_only: bool = False) -> bytes:
        headers = self.headers.copy()
        headers.remove("transfer-encoding")
        headers.set("content-length", str(len(self.body)))
        reason = self.reason or REASONS.get(self.status, "Unknown")
        line = f"HTTP/1.1 {self.status} {reason}\r\n".encode("latin-1")
        return line + headers.encode() + b"\r\n" + (b"" if head_only else self.body)


async def _read_head(reader: asyncio.StreamReader) -> list[str] | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpParseError("connection closed inside the message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpParseError("message head too large") from exc
    if len(raw) > MAX_HEAD:
        raise HttpParseError("message head too large")
    lines = raw.decode("latin-1").split("\r\n")
    while lines and lines[0] == "":
        lines.pop(0)  # RFC 9112 §2.2: ignore empty lines before a request line
    return [ln for ln in lines if ln != ""]


def _parse_headers(lines: list[str]) -> Headers:
    headers = Headers()
    for ln in lines:
        name, sep, value = ln.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpParseError(f"bad header line {ln!r}")
        headers.add(name, value.strip())
    return headers


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    out = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise HttpParseError(f"bad chunk size {size_line!r}") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers are dropped
            return bytes(out)
        out += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(out) > MAX_BODY:
            raise HttpParseError("body too large")


async def _read_body(reader: asyncio.StreamReader, headers: Headers) -> bytes:
    if "chunked" in (headers.get("transfer-encoding") or "").lower():
        return await _read_chunked(reader)
    length = headers.get("content-length")
    if length is None:
        return b""
    try:
        n = int(length)
    except ValueError as exc:
        raise HttpParseError(f"bad content-length {length!r}") from exc
    if n < 0 or n > MAX_BODY:
        raise HttpParseError(f"content-length {n} out of range")
    return await reader.readexactly(n) if n else b""


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None = None
) -> Request | None:
    """The next request on the connection, or None when the peer closed between requests.

    With ``writer``, a client that sent ``Expect: 100-continue`` is told to go on."""
    lines = await _read_head(reader)
    if lines is None:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpParseError(f"bad request line {lines[0][:80]!r}")
    headers = _parse_headers(lines[1:])
    if writer is not None and (headers.get("expect") or "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    try:
        body = await _read_body(reader, headers)
    except asyncio.IncompleteReadError as exc:
        raise HttpParseError("connection closed inside the request body") from exc
    return Request(method=parts[0], target=parts[1], headers=headers, body=body, version=parts[2])


async def read_response(reader: asyncio.StreamReader, *, method: str = "GET") -> Response:
    """The response to a request of ``method``; raises ``HttpParseError`` or ``ConnectionError``."""
    lines = await _read_head(reader)
    if lines is None:
        raise ConnectionResetError("upstream closed the connection before a response")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpParseError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    headers = _parse_headers(lines[1:])
    reusable = "close" not in (headers.get("connection") or "").lower()
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "transfer-encoding" in headers or "content-length" in headers:
        try:
            body = await _read_body(reader, headers)
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError("upstream closed the connection inside the body") from exc
    else:
        body = await reader.read(MAX_BODY)
        reusable = False
    return Response(
        status=status,
        headers=headers,
        body=body,
        reason=parts[2] if len(parts) > 2 else "",
        reusable=reusable,
    )
