"""Registers the lab's Consul programs for the images the consul-k8s chart runs.

- ``hashicorp/consul``: the server agent (:mod:`.server`); its bin dir has ``consul``
  (the CLI, :mod:`.cli`), the shell tools and ``curl`` (the chart's readiness probe).
- ``hashicorp/consul-k8s-control-plane``: catalog sync (:mod:`.sync`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from meshproof.lab.images import BASE_COMMANDS, Program, register_image

__all__: list[str] = []

_BIN = Path(__file__).resolve().parent / "bin"
# The CLI script runs this interpreter by a name no real image has, so that the
# container's PATH offers `consul`, not `python`.
_ALIASES = (("consul", str(_BIN / "consul")), (".lab-python", sys.executable))
_COMMANDS = (*BASE_COMMANDS, "curl", "sed", "cut", "awk", "tr")

register_image("hashicorp/consul", Program(entry="meshproof.lab.consul.server:run",
                                           commands=_COMMANDS, aliases=_ALIASES))
register_image("hashicorp/consul-k8s-control-plane", Program(
    entry="meshproof.lab.consul.sync:run", commands=_COMMANDS, aliases=_ALIASES))
