"""Registers the lab's istiod for the ``istio/pilot`` image."""

from __future__ import annotations

from meshproof.lab.images import register_image

__all__: list[str] = []

register_image("istio/pilot", "meshproof.lab.istiod.program:run")
