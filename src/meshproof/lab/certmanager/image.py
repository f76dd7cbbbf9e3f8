"""Registers the lab's cert-manager controller for the ``jetstack/cert-manager-controller`` image."""

from __future__ import annotations

from meshproof.lab.images import register_image

__all__: list[str] = []

register_image("jetstack/cert-manager-controller", "meshproof.lab.certmanager.program:run")
