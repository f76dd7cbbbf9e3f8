"""A locustfile that cannot be imported."""

from __future__ import annotations

raise ImportError("this locustfile is broken on purpose")
