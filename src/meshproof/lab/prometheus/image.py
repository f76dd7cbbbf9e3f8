"""Registers the lab's Prometheus for the ``prom/prometheus`` image."""

from __future__ import annotations

from meshproof.lab.images import register_image

__all__: list[str] = []

register_image("prom/prometheus", "meshproof.lab.prometheus.program:run")
