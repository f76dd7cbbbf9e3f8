"""Reading what the probe agents saw: statuses, failure kinds, which version answered."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

__all__ = ["versions", "statuses", "failures", "VERSION_PATTERN"]

VERSION_PATTERN = re.compile(r"Hello version: (v\d+)")
"""The helloworld sample's answer names its version (istio/istio samples/helloworld)."""


def versions(results: Iterable[dict[str, Any]]) -> Counter[str]:
    """How many answers came from each version (non-200 answers and failures are skipped)."""
    counts: Counter[str] = Counter()
    for r in results:
        if r.get("status") == 200:
            match = VERSION_PATTERN.search(str(r.get("body", "")))
            if match:
                counts[match.group(1)] += 1
    return counts


def statuses(results: Iterable[dict[str, Any]]) -> Counter[int]:
    return Counter(int(r["status"]) for r in results if r.get("status"))


def failures(results: Iterable[dict[str, Any]]) -> Counter[str]:
    """Connection-level failures by kind (reset, refused, timeout, tls, dns, ...)."""
    return Counter(str(r.get("failure")) for r in results if not r.get("status"))
