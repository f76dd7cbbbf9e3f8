"""Exact per-request records: written inside Locust, read back by the suite.

Locust keeps response times in a histogram whose buckets widen with the value
(10 ms steps between 100 and 999 ms, 100 ms steps above), so its percentiles
cannot be compared with a 100 ms threshold. Every meshproof locustfile therefore
registers :class:`RequestRecorder` on Locust's ``request`` event; it appends one
line per request with the exact time Locust measured, the status code, the
kind of failure and, for helloworld, which version answered.

This module never imports Locust (or gevent): the recorder is plain Python
that Locust calls, and the reader runs in the suite's own process.

File format (``requests-<pid>.tsv`` in the record directory, one per Locust
process, so distributed workers never share a file)::

    # meshproof-load-records v1
    <start epoch s>\\t<latency ms>\\t<status>\\t<outcome>\\t<version>\\t<instance>\\t<name>

``outcome`` is ``ok`` or a failure kind from :func:`failure_kind`; ``version``
and ``instance`` are empty when the body did not say.
"""

from __future__ import annotations

import os
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "RECORD_FILE_GLOB",
    "RECORD_HEADER",
    "RecordCounter",
    "RequestRecord",
    "RequestRecorder",
    "failure_kind",
    "hello_version",
    "read_records",
]

RECORD_HEADER = "# meshproof-load-records v1"
RECORD_FILE_GLOB = "requests-*.tsv"

# The sample app's reply, e.g. "Hello version: v2, instance: helloworld-v2-7d4f-abcde".
_HELLO = re.compile(r"Hello version:\s*(?P<version>[^,\s]+),\s*instance:\s*(?P<instance>\S+)")

# A recorder flushes at least this often so that progress (which counts lines)
# and a killed run both see recent requests.
_FLUSH_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as Locust saw it."""

    start: float
    """When the request started, seconds since the epoch."""
    latency_ms: float
    """Locust's own measurement, unrounded."""
    status: int
    """HTTP status code; 0 when no response arrived (refused, reset, timeout)."""
    outcome: str
    """``ok`` or the failure kind (see :func:`failure_kind`)."""
    version: str = ""
    """The helloworld version that answered, if the body named one."""
    instance: str = ""
    """The helloworld instance that answered, if the body named one."""
    name: str = ""
    """Locust's request name (the stats row it is counted under)."""

    @property
    def failed(self) -> bool:
        """True when Locust counted this request as a failure."""
        return self.outcome != "ok"


def hello_version(body: str | None) -> tuple[str, str]:
    """``(version, instance)`` from a helloworld body, ``("", "")`` if it names none."""
    if not body:
        return "", ""
    found = _HELLO.search(body)
    if found is None:
        return "", ""
    return found.group("version"), found.group("instance")


def failure_kind(exception: BaseException | None, status: int) -> str:
    """Classify a request's failure: ``ok``, ``http-<code>``, ``connection-refused``, ...

    Works on the exception objects Locust's ``FastHttpUser`` and ``HttpUser``
    report without importing Locust: a bad status carries the response code,
    network failures are standard ``OSError`` subclasses.
    """
    if exception is None:
        return "ok"
    if isinstance(exception, ConnectionRefusedError):
        return "connection-refused"
    if isinstance(exception, ssl.SSLError):
        return "tls"
    if isinstance(exception, TimeoutError) or "timeout" in type(exception).__name__.lower():
        return "timeout"
    if isinstance(exception, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "connection-reset"
    if status >= 100:
        # Locust's LocustBadStatusCode (FastHttpUser) and requests' HTTPError both
        # mean "the status was not a success"; anything else with a response is a
        # task that marked a good status as failed (catch_response).
        name = type(exception).__name__
        if name in ("LocustBadStatusCode", "HTTPError") or status >= 400:
            return f"http-{status}"
        return "response-check"
    if isinstance(exception, OSError):
        return "network"
    return type(exception).__name__.lower()


def _clean(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


class RequestRecorder:
    """A listener for Locust's ``request`` event that appends exact records to a file.

    ``directory`` is created if needed; the file is opened on the first request,
    so a distributed master (which sends no requests) leaves no file behind.
    ``parse_versions`` reads helloworld's ``Hello version: ...`` from each body.
    """

    def __init__(self, directory: str | os.PathLike[str], *, parse_versions: bool = False) -> None:
        self.directory = Path(directory)
        self.parse_versions = parse_versions
        self.path = self.directory / f"requests-{os.getpid()}.tsv"
        self._file: IO[str] | None = None
        self._last_flush = 0.0

    def on_request(
        self,
        request_type: str = "",
        name: str = "",
        response_time: float | None = None,
        response_length: int = 0,
        response: Any = None,
        context: Any = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        url: str | None = None,
        **_: Any,
    ) -> None:
        """Locust's ``request`` event signature; writes one line."""
        status = int(getattr(response, "status_code", 0) or 0)
        version, instance = "", ""
        if self.parse_versions and response is not None and status:
            try:
                version, instance = hello_version(response.text)
            except Exception:  # an undecodable body names no version
                version, instance = "", ""
        started = start_time if start_time is not None else time.time()
        line = "\t".join(
            (
                f"{started:.6f}",
                f"{float(response_time or 0.0):.3f}",
                str(status),
                failure_kind(exception, status),
                _clean(version),
                _clean(instance),
                _clean(f"{request_type} {name}".strip()),
            )
        )
        self._write(line + "\n")

    def _write(self, line: str) -> None:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            if self._file.tell() == 0:
                self._file.write(RECORD_HEADER + "\n")
        self._file.write(line)
        now = time.monotonic()
        if now - self._last_flush >= _FLUSH_EVERY_S:
            self._file.flush()
            self._last_flush = now

    def flush(self, **_: Any) -> None:
        """Flush buffered lines (usable as a Locust ``test_stop`` listener)."""
        if self._file is not None:
            self._file.flush()

    def close(self, **_: Any) -> None:
        """Flush and close (usable as a Locust ``quitting`` listener)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _record_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(RECORD_FILE_GLOB))


def read_records(directory: str | os.PathLike[str]) -> Iterator[RequestRecord]:
    """Every record in ``directory``'s record files; a torn last line is skipped."""
    for path in _record_files(Path(directory)):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("#") or not line.endswith("\n"):
                    continue
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 7:
                    continue
                start, latency, status, outcome, version, instance, name = parts
                yield RequestRecord(
                    start=float(start),
                    latency_ms=float(latency),
                    status=int(status),
                    outcome=outcome,
                    version=version,
                    instance=instance,
                    name=name,
                )


class RecordCounter:
    """Counts requests and failures in a record directory as it grows.

    Reads only what was appended since the last call, so polling a long run
    every few seconds stays cheap.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.requests = 0
        self.failures = 0
        self._offsets: dict[Path, int] = {}

    def update(self) -> tuple[int, int]:
        """``(requests, failures)`` recorded so far."""
        for path in _record_files(self.directory):
            with open(path, "rb") as handle:
                handle.seek(self._offsets.get(path, 0))
                chunk = handle.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offsets[path] = self._offsets.get(path, 0) + len(complete)
            for line in complete.splitlines():
                if line.startswith(b"#"):
                    continue
                fields = line.split(b"\t")
                if len(fields) == 7:
                    self.requests += 1
                    self.failures += fields[3] != b"ok"
        return self.requests, self.failures
