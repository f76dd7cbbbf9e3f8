"""Exact per-request records for every meshproof locustfile.

``--record-dir DIR`` (env ``MESHPROOF_LOAD_RECORD_DIR``) makes each Locust
process append one line per request to ``DIR/requests-<pid>.tsv``: the exact
response time (Locust rounds its own stats to 10 ms steps from 100 ms up), the
status, the failure kind and, for helloworld, the version that answered. The
format and the reader are in ``meshproof.load.recording``, which does not
import Locust. Without ``--record-dir`` nothing is written.
"""

from __future__ import annotations

from typing import Any

from locust import events

from meshproof.load.recording import RequestRecorder

__all__ = ["record_requests"]


@events.init_command_line_parser.add_listener
def _record_options(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--record-dir",
        default="",
        env_var="MESHPROOF_LOAD_RECORD_DIR",
        help="directory for exact per-request records (requests-<pid>.tsv)",
    )


def record_requests(*, parse_versions: bool = False) -> None:
    """Register the recorder once Locust has parsed its options."""

    @events.init.add_listener
    def _install(environment: Any, **_: Any) -> None:
        directory = getattr(environment.parsed_options, "record_dir", "")
        if not directory:
            return
        recorder = RequestRecorder(directory, parse_versions=parse_versions)
        environment.events.request.add_listener(recorder.on_request)
        environment.events.test_stop.add_listener(recorder.flush)
        environment.events.quitting.add_listener(recorder.close)
