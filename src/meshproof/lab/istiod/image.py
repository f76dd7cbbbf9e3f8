"""Registers the lab's istiod for the ``istio/pilot`` image.

Its bin dir has ``pilot-discovery`` (:mod:`.pilot_discovery`: ``pilot-discovery request``,
what operators exec in the istiod pod to read its debug endpoints) and the shell tools.
"""

from __future__ import annotations

import sys
from pathlib import Path

from meshproof.lab.images import BASE_COMMANDS, Program, register_image

__all__: list[str] = []

_BIN = Path(__file__).resolve().parent / "bin"

register_image("istio/pilot", Program(
    entry="meshproof.lab.istiod.program:run", commands=BASE_COMMANDS,
    aliases=(("pilot-discovery", str(_BIN / "pilot-discovery")),
             (".lab-python", sys.executable))))
