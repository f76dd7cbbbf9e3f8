"""The images every cluster needs, whatever else the lab runs.

- ``registry.k8s.io/pause`` sleeps;
- ``curlimages/curl`` offers the host's ``curl``; its entrypoint is ``curl`` (the
  upstream sample overrides it with ``/bin/sleep infinity``);
- ``busybox``, ``alpine``, ``debian``, ``ubuntu`` run the container's command with the
  host's shell tools;
- ``python`` (``python:3.x-slim``, the probe agent's image) also offers ``python`` /
  ``python3``: the host's interpreter without the lab's packages, like the image.
- ``meshproof/lab-echo`` (lab only) answers HTTP with who it is (:mod:`.echo`).
"""

from __future__ import annotations

import sys

from meshproof.lab.images import BASE_COMMANDS, Program, register_image

__all__: list[str] = []

_SLEEP = ("sleep", "infinity")
_SHELL_TOOLS = (*BASE_COMMANDS, "wget", "nc", "cut", "sed", "awk", "tr", "sort", "uniq", "xargs",
                "find", "stat", "base64", "dd", "nslookup", "ping", "mv", "cp", "tty", "stty")
# The interpreter under the venv: stdlib only, as in the slim image.
_PYTHON = getattr(sys, "_base_executable", None) or sys.executable

register_image("registry.k8s.io/pause", Program(default_command=_SLEEP))
register_image("k8s.gcr.io/pause", Program(default_command=_SLEEP))
register_image("curlimages/curl", Program(default_command=("curl",), entrypoint=("curl",),
                                          commands=(*BASE_COMMANDS, "curl")))
for _shell_image in ("busybox", "alpine", "debian", "ubuntu"):
    register_image(_shell_image, Program(default_command=("sh",), commands=_SHELL_TOOLS))
register_image("python", Program(
    default_command=("python3",),
    commands=_SHELL_TOOLS,
    aliases=(("python", _PYTHON), ("python3", _PYTHON)),
))
register_image("meshproof/lab-echo", "meshproof.lab.images.echo:run")
