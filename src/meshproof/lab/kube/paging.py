"""Lists in chunks: the ``limit`` and ``continue`` parameters of a list request.

As the Kubernetes API concepts describe it ("Retrieving large results sets in
chunks", https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks,
and ListMeta, https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/list-meta/):
a list with ``limit`` returns at most that many items, in key order; when more
remain, ``metadata.continue`` holds an opaque token for the next request and,
unless the request had a label or field selector, ``metadata.remainingItemCount``
says how many. Every page carries the first page's ``resourceVersion``. A token
whose version the store no longer keeps history for is answered 410 ``Expired``
(the API server does the same once etcd compacted that revision); a token that
does not decode is 400 ``BadRequest``.

The store keeps no old revisions, so a later page is cut from the objects as
they are now, after the token's key: what a real server answers when it has to
continue an inconsistent list.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from meshproof.lab.kube.apierrors import BadRequest, Expired

__all__ = ["Page", "continue_token", "page", "parse_limit"]

Obj = dict[str, Any]
_TOKEN_VERSION = "meta.k8s.io/v1"
_EXPIRED = ("The provided continue parameter is too old to display a consistent list result. "
            "You can start a new list without the continue parameter.")


@dataclass(frozen=True, slots=True)
class Page:
    """One chunk of a list and the list metadata that goes with it."""

    items: list[Obj]
    metadata: Obj


def parse_limit(text: str) -> int:
    """The ``limit`` parameter; 0 (absent, zero or negative) means no limit."""
    if not text:
        return 0
    try:
        return max(0, int(text))
    except ValueError:
        raise BadRequest(f'invalid limit "{text}": must be an integer') from None


def _item_key(item: Obj) -> tuple[str, str]:
    meta = item.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def continue_token(resource_version: int, last: tuple[str, str]) -> str:
    """The opaque token that resumes a list at ``resource_version`` after the key ``last``."""
    # The start key is the last key returned plus a NUL, the smallest key after it.
    start = f"{last[0]}/{last[1]}\x00"
    raw = json.dumps({"v": _TOKEN_VERSION, "rv": resource_version, "start": start})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(token: str) -> tuple[int, tuple[str, str]]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data.get("v") != _TOKEN_VERSION:
            raise ValueError(f"unknown token version {data.get('v')!r}")
        namespace, _, name = str(data["start"]).rstrip("\x00").partition("/")
        return int(data["rv"]), (namespace, name)
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadRequest(f"continue key is not valid: {exc}") from None


def page(items: list[Obj], *, limit: int, token: str, resource_version: str,
         compacted: int, selected: bool) -> Page:
    """The chunk of ``items`` (sorted by namespace and name) a request asks for.

    ``resource_version`` is the store's version now, ``compacted`` the newest
    version whose history may be gone, ``selected`` whether the request had a
    label or field selector.
    """
    version = int(resource_version)
    if token:
        version, last = _decode(token)
        if version < compacted:
            raise Expired(_EXPIRED)
        items = [item for item in items if _item_key(item) > last]
    metadata: Obj = {"resourceVersion": str(version)}
    if not limit or len(items) <= limit:
        return Page(items, metadata)
    chunk = items[:limit]
    metadata["continue"] = continue_token(version, _item_key(chunk[-1]))
    if not selected:
        metadata["remainingItemCount"] = len(items) - limit
    return Page(chunk, metadata)
