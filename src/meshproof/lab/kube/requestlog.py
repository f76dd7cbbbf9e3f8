"""The API server's request log: one JSON line per request, so tests can tell who wrote what.

Fields: ``time`` (RFC 3339 with milliseconds), ``user`` (the name the token
maps to, never the token), ``verb`` (get, list, watch, create, update, patch,
delete, deletecollection, or the connect verb of a subresource), ``group``,
``resource``, ``subresource``, ``namespace``, ``name``, ``code``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["RequestLog", "RequestRecord", "read_request_log"]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One served request."""

    time: str
    user: str
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    path: str


class RequestLog:
    """Appends ``RequestRecord`` lines to ``path`` (no file: records are kept in memory only)."""

    def __init__(self, path: Path | None, *, keep: int = 10000) -> None:
        self.path = path
        self._recent: list[RequestRecord] = []
        self._keep = keep
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, *, user: str, verb: str, group: str = "", resource: str = "",
              subresource: str = "", namespace: str = "", name: str = "", code: int,
              path: str = "") -> RequestRecord:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record = RequestRecord(now, user, verb, group, resource, subresource, namespace, name,
                               code, path)
        with self._lock:
            self._recent.append(record)
            del self._recent[: -self._keep]
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(asdict(record), separators=(",", ":")) + "\n")
        return record

    def recent(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._recent)


def read_request_log(path: Path) -> Iterator[RequestRecord]:
    """The records in a request log file, oldest first."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield RequestRecord(**json.loads(line))
