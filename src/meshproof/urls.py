"""URLs meshproof sends results to: checked, and shown without credentials. A module of
its own, so the CLI can check ``--pushgateway`` without importing the report writers."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit, urlunsplit

__all__ = ["pushgateway_url", "shown_url"]


def pushgateway_url(text: str) -> str:
    """``--pushgateway``'s value: an http(s) URL with a host (argparse ``type``)."""
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{shown_url(text)!r} is not a Pushgateway URL; give http(s)://HOST:PORT"
        )
    return text


def shown_url(url: str) -> str:
    """The URL without user and password, for messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
