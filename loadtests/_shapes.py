"""Load shapes shared by meshproof's locustfiles: ``steady`` and ``step``.

``--stop-file`` (env ``MESHPROOF_LOAD_STOP_FILE``) ends either early, the way the
end of ``-t`` does, once that file exists: the library's way to stop a run that has
what it needs.

Selected with ``--shape`` (env ``MESHPROOF_LOAD_SHAPE``); both honour Locust's
own ``-u`` (peak users), ``-r`` (spawn rate) and ``-t`` (run time), so a plain
``locust -f loadtests/helloworld.py --headless -u 10 -t 30s --host ...`` is a
steady load. ``step`` adds ``--step-users`` users every ``--step-seconds``
until ``-u`` is reached, and holds there until ``-t`` runs out.

The leading underscore keeps Locust from loading this file as a locustfile
when it is given the whole ``loadtests/`` directory.
"""

from __future__ import annotations

import os
from typing import Any

from locust import LoadTestShape, events

from meshproof.load.shapes import SHAPES, users_at

__all__ = ["MeshproofShape"]


@events.init_command_line_parser.add_listener
def _shape_options(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--shape",
        choices=list(SHAPES),
        default="steady",
        env_var="MESHPROOF_LOAD_SHAPE",
        help="steady: -u users for -t; step: --step-users more every --step-seconds up to -u",
    )
    parser.add_argument(
        "--step-users",
        type=int,
        default=1,
        env_var="MESHPROOF_LOAD_STEP_USERS",
        help="users added at each step of the 'step' shape",
    )
    parser.add_argument(
        "--stop-file",
        default="",
        env_var="MESHPROOF_LOAD_STOP_FILE",
        help="end the run (users stop, output is written) once this file exists",
    )
    parser.add_argument(
        "--step-seconds",
        type=float,
        default=10.0,
        env_var="MESHPROOF_LOAD_STEP_SECONDS",
        help="how long each step of the 'step' shape lasts",
    )


class MeshproofShape(LoadTestShape):
    """The shape named by ``--shape``, bounded by ``-t`` (runs until stopped without it)."""

    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        if options is None:
            return None
        elapsed = self.get_run_time()
        run_time = options.run_time or 0
        if run_time and elapsed >= run_time:
            return None
        if options.stop_file and os.path.exists(options.stop_file):
            return None
        users = users_at(
            elapsed,
            shape=options.shape,
            peak=options.num_users or 1,
            step_users=max(1, options.step_users),
            step_seconds=max(0.1, options.step_seconds),
        )
        return users, float(options.spawn_rate or 1)
