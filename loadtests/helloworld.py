"""Cross-cluster load: helloworld's ``/hello`` through the mesh.

Run on its own::

    locust -f loadtests/helloworld.py --headless -u 20 -r 10 -t 60s \\
        --host http://helloworld.sample:5000 --record-dir /tmp/hello-records

``--host`` is the base URL (in-mesh it is ``http://helloworld.sample:5000``;
from outside, whatever address reaches the service). ``--hello-path`` changes
the path, ``--hello-header NAME:VALUE`` adds a header (e.g. ``env:canary`` to
exercise header routing). Each reply ``Hello version: v2, instance: ...`` is
recorded with its version when ``--record-dir`` is set; load shapes come from
``_shapes`` (``--shape steady|step``).
"""

from __future__ import annotations

from typing import Any

from _recording import record_requests
from _shapes import MeshproofShape
from locust import FastHttpUser, constant, events, task

__all__ = ["HelloworldUser", "MeshproofShape"]


@events.init_command_line_parser.add_listener
def _hello_options(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--hello-path",
        default="/hello",
        env_var="MESHPROOF_LOAD_HELLO_PATH",
        help="path of the helloworld request",
    )
    parser.add_argument(
        "--hello-header",
        default="",
        env_var="MESHPROOF_LOAD_HELLO_HEADER",
        help="one extra request header, NAME:VALUE (e.g. env:canary)",
    )


record_requests(parse_versions=True)


class HelloworldUser(FastHttpUser):
    """Asks helloworld who answers, back to back (no think time: this is load)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.path = getattr(options, "hello_path", "/hello") or "/hello"
        self.headers: dict[str, str] = {}
        header = getattr(options, "hello_header", "") or ""
        if header:
            name, _, value = header.partition(":")
            self.headers[name.strip()] = value.strip()

    @task
    def hello(self) -> None:
        self.client.get(self.path, headers=self.headers, name=self.path)
