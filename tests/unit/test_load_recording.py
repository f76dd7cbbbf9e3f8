"""Exact records: failure kinds, helloworld versions, the file format and its readers."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from meshproof.load.recording import (
    RECORD_HEADER,
    RecordCounter,
    RequestRecorder,
    failure_kind,
    hello_version,
    read_records,
)


class _Response:
    def __init__(self, status_code: int, text: str | None = "") -> None:
        self.status_code = status_code
        self.text = text


class LocustBadStatusCode(Exception):
    """Same name as Locust's, which the classifier recognises without importing Locust."""


@pytest.mark.parametrize(
    ("exception", "status", "kind"),
    [
        (None, 200, "ok"),
        (ConnectionRefusedError(111, "refused"), 0, "connection-refused"),
        (ssl.SSLCertVerificationError(1, "verify failed"), 0, "tls"),
        (TimeoutError("timed out"), 0, "timeout"),
        (ConnectionResetError(104, "reset"), 0, "connection-reset"),
        (LocustBadStatusCode("503"), 503, "http-503"),
        (LocustBadStatusCode("302"), 302, "http-302"),
        (ValueError("body lacked the version"), 200, "response-check"),
        (OSError(113, "no route"), 0, "network"),
        (RuntimeError("?"), 0, "runtimeerror"),
    ],
)
def test_failure_kind(exception: BaseException | None, status: int, kind: str) -> None:
    assert failure_kind(exception, status) == kind


def test_hello_version_parses_the_sample_reply() -> None:
    assert hello_version("Hello version: v2, instance: helloworld-v2-7d4f-abcde\n") == (
        "v2",
        "helloworld-v2-7d4f-abcde",
    )
    assert hello_version("no route") == ("", "")
    assert hello_version(None) == ("", "")


def test_recorder_writes_exact_times_and_reads_back(tmp_path: Path) -> None:
    recorder = RequestRecorder(tmp_path / "records", parse_versions=True)
    recorder.on_request(
        request_type="GET",
        name="/hello",
        response_time=123.4567,
        response=_Response(200, "Hello version: v1, instance: a"),
        start_time=1000.5,
    )
    recorder.on_request(
        request_type="GET",
        name="/hello",
        response_time=0.8,
        response=_Response(0, None),
        exception=ConnectionRefusedError(111, "refused"),
        start_time=1001.0,
    )
    recorder.close()
    text = recorder.path.read_text()
    assert text.startswith(RECORD_HEADER + "\n")
    records = list(read_records(tmp_path / "records"))
    assert [r.latency_ms for r in records] == [123.457, 0.8]
    assert [(r.status, r.outcome, r.version, r.instance) for r in records] == [
        (200, "ok", "v1", "a"),
        (0, "connection-refused", "", ""),
    ]
    assert records[1].failed and not records[0].failed


def test_no_file_until_the_first_request(tmp_path: Path) -> None:
    recorder = RequestRecorder(tmp_path / "records")
    recorder.flush()
    recorder.close()
    assert not (tmp_path / "records").exists()


def test_reader_skips_a_torn_last_line(tmp_path: Path) -> None:
    (tmp_path / "requests-1.tsv").write_text(
        f"{RECORD_HEADER}\n1.0\t5.000\t200\tok\t\t\tGET /\n2.0\t6.0"
    )
    assert [r.latency_ms for r in read_records(tmp_path)] == [5.0]


def test_counter_reads_only_what_was_appended(tmp_path: Path) -> None:
    path = tmp_path / "requests-7.tsv"
    path.write_text(f"{RECORD_HEADER}\n1.0\t5.000\t200\tok\t\t\tGET /\n")
    counter = RecordCounter(tmp_path)
    assert counter.update() == (1, 0)
    with open(path, "a") as handle:
        handle.write("2.0\t5.000\t503\thttp-503\t\t\tGET /\n3.0\t1.0")
    assert counter.update() == (2, 1)
    with open(path, "a") as handle:
        handle.write("00\t0\tconnection-refused\t\t\tGET /\n")
    (tmp_path / "requests-8.tsv").write_text(f"{RECORD_HEADER}\n1.0\t5.000\t200\tok\t\t\tGET /\n")
    assert counter.update() == (4, 2)
