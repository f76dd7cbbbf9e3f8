"""Reading request bodies the way the API server accepts them."""

from __future__ import annotations

import json
from typing import Any

import yaml
from aiohttp import web

from meshproof.lab.kube.apierrors import BadRequest, UnsupportedMediaType
from meshproof.lab.kube.protobuf import PROTOBUF, decode_object

__all__ = ["read_body"]


async def read_body(request: web.Request) -> Any:
    """The request body as JSON data: JSON, YAML (apply patches) or Kubernetes protobuf
    (what kubectl's typed clients send); an empty body is ``{}``."""
    content_type = request.headers.get("Content-Type", "")
    if "cbor" in content_type:
        raise UnsupportedMediaType(f"the lab API server reads JSON, YAML and (for built-in kinds "
                                   f"kubectl writes) protobuf bodies, not {content_type}")
    if content_type.startswith(PROTOBUF):
        return decode_object(await request.read())
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise BadRequest(f"the request body is neither JSON nor YAML: {exc}") from exc
