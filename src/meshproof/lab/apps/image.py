"""Registers the sample applications' images."""

from __future__ import annotations

from meshproof.lab.images import register_image

__all__: list[str] = []

register_image("istio/examples-helloworld", "meshproof.lab.apps.helloworld:run")
register_image("mccutchen/go-httpbin", "meshproof.lab.apps.httpbin:run")
