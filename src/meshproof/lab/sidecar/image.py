"""Registers the lab proxy (with its pilot-agent) for the ``istio/proxyv2`` image."""

from __future__ import annotations

import sys
from pathlib import Path

from meshproof.lab.images import BASE_COMMANDS, Program, register_image

__all__: list[str] = []

register_image("istio/proxyv2", Program(
    entry="meshproof.lab.sidecar.program:run",
    commands=BASE_COMMANDS + ("curl",),
    aliases=(("pilot-agent", str(Path(__file__).with_name("pilot-agent.sh"))),
             ("python3", sys.executable)),
))
