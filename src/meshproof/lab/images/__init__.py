"""Which lab program runs a container, chosen by the container's image name.

A real cluster pulls an image and runs its entrypoint; the lab looks the image's
repository up here and runs the registered :class:`Program` instead. An image
nothing is registered for stays ``ErrImagePull`` / ``ImagePullBackOff``, as a real
cluster would leave it.

Registering (from any lab part)::

    from meshproof.lab.images import Program, register_image

    register_image("istio/proxyv2", "meshproof.lab.proxy.main:run")      # a Python program
    register_image("busybox", Program(commands=("sh", "wget")))           # the spec's command

A Python program is ``"module:function"``; the container process imports it and
calls ``function(ctx)`` with a :class:`~meshproof.lab.images.context.ContainerContext`
(sync, or ``async def``; the return value is the exit code). Modules named
``meshproof.lab.<part>.image`` are imported by :func:`load_registrations`, so a
part registers its images by having such a module; ``MESHPROOF_LAB_IMAGE_MODULES``
(comma-separated) names extra modules, which is how tests add programs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from dataclasses import dataclass

from meshproof.lab.images.context import ContainerContext
from meshproof.lab.images.hubs import canonical

__all__ = [
    "BASE_COMMANDS",
    "ContainerContext",
    "Program",
    "load_registrations",
    "lookup",
    "register_image",
    "registered",
    "repository_of",
]

BASE_COMMANDS: tuple[str, ...] = (
    "sh", "date", "cat", "ls", "env", "sleep", "echo", "true", "false", "grep", "head",
    "tail", "wc", "printf", "test", "mkdir", "rm", "touch", "hostname", "id", "kill", "ps",
    "tar",  # kubectl cp runs tar in the container
)
"""Host commands every image's bin dir offers to ``exec`` (a shell image's minimum)."""


@dataclass(frozen=True, slots=True)
class Program:
    """What the lab runs for an image."""

    entry: str | None = None
    """``"module:function"`` run in the container process; None runs the spec's command."""
    default_command: tuple[str, ...] = ()
    """The image's ENTRYPOINT+CMD, used when ``entry`` is None and the spec gives none."""
    entrypoint: tuple[str, ...] = ()
    """The image's ENTRYPOINT: a spec with ``args`` but no ``command`` runs entrypoint + args."""
    commands: tuple[str, ...] = BASE_COMMANDS
    """Host commands put on the container's PATH (its bin dir); ``exec`` finds only these."""
    aliases: tuple[tuple[str, str], ...] = ()
    """Extra bin-dir names → a host command or path, e.g. ("python", "/usr/bin/python3")."""


_REGISTRY: dict[str, Program] = {}


def register_image(repo_prefix: str, program: Program | str) -> None:
    """Run ``program`` for images whose repository is ``repo_prefix`` or below it.

    ``repo_prefix`` is matched without registry host and tag: ``istio/proxyv2`` matches
    ``docker.io/istio/proxyv2:1.31.0``; ``python`` matches ``python:3.12-slim``. Istio's
    other hubs (``registry.istio.io/release/proxyv2``, ``gcr.io/istio-release/proxyv2``:
    :mod:`.hubs`) name the same repositories as ``docker.io/istio``.
    A later registration for the same prefix replaces the earlier one.
    """
    _REGISTRY[repository_of(canonical(repo_prefix))] = (
        Program(entry=program) if isinstance(program, str) else program
    )


def repository_of(image: str) -> str:
    """``docker.io/library/python:3.12-slim@sha256:..`` → ``python``; ``quay.io/x/y:1`` →
    ``x/y``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    parts = name.split("/")
    # A first component with a dot or a port is a registry host, as the container runtimes read it.
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == "library":
        parts = parts[1:]
    return "/".join(parts)


def lookup(image: str) -> Program | None:
    """The program for ``image`` (longest registered prefix wins), or None: unknown image."""
    repo = repository_of(canonical(image))
    best: str | None = None
    for prefix in _REGISTRY:
        matches = repo == prefix or repo.startswith((prefix + "/", prefix + "-"))
        if matches and (best is None or len(prefix) > len(best)):
            best = prefix
    return _REGISTRY[best] if best is not None else None


def registered() -> dict[str, Program]:
    """A copy of the registry (prefix → program)."""
    return dict(_REGISTRY)


def load_registrations() -> dict[str, str]:
    """Import the built-in programs, every ``meshproof.lab.<part>.image`` module, and the
    modules named in ``MESHPROOF_LAB_IMAGE_MODULES``.

    Returns the modules that failed to import (name → error): the lab still starts, and
    their images stay in ImagePullBackOff, which is what a broken registry looks like.
    """
    importlib.import_module("meshproof.lab.images.builtin")
    from meshproof import lab

    names = [f"meshproof.lab.{info.name}.image" for info in pkgutil.iter_modules(lab.__path__)
             if info.ispkg]
    names += [n.strip() for n in os.environ.get("MESHPROOF_LAB_IMAGE_MODULES", "").split(",")
              if n.strip()]
    failed: dict[str, str] = {}
    for name in names:
        try:
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
        except Exception as exc:  # one part's bug must not stop the lab
            failed[name] = f"{type(exc).__name__}: {exc}"
    return failed
