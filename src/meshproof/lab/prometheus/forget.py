"""Forget what a cluster's Prometheus has recorded, through its admin API.

The lab starts Prometheus with ``--web.enable-admin-api`` (off by default upstream:
prometheus/prometheus ``cmd/prometheus/main.go``, flag ``web.enable-admin-api``; the
endpoints are ``POST /api/v1/admin/tsdb/delete_series`` with ``match[]``, ``start`` and
``end``, answered 204, and ``POST /api/v1/admin/tsdb/clean_tombstones``, documented in
``docs/querying/api.md`` "TSDB Admin APIs"). ``meshproof lab forget-metrics`` uses it so
that one lab can serve runs one after another whose guarantees are judged over windows
longer than the time between them: after a break or a heal, every series recorded until
now is deleted, and the next run's windows see only what happens after it, as on a new
lab. A fault still in place (a heal that did not heal) keeps making new samples, which the
next run judges.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from meshproof.errors import LabError

__all__ = ["ALL_SERIES", "forget_series"]

ALL_SERIES = '{__name__=~".+"}'


def _post(url: str, token: str, context: ssl.SSLContext | None, timeout: float) -> None:
    req = urllib.request.Request(url, method="POST", data=b"",
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip()
        raise LabError(f"{url.split('?', 1)[0]} answered {exc.code}: {body[:300]}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise LabError(f"{url.split('?', 1)[0]}: {exc}") from exc


def forget_series(base: str, token: str, ca_pem: bytes, *, timeout: float,
                  now: float | None = None) -> float:
    """Delete every series' samples up to ``now`` (default: the current time) in the
    Prometheus at ``base`` and drop the tombstones; returns the time used as the end.

    The end is explicit: samples scraped after it stay visible."""
    end = time.time() if now is None else now
    context = ssl.create_default_context(cadata=ca_pem.decode()) if base.startswith(
        "https") else None
    query = urllib.parse.urlencode({"match[]": ALL_SERIES, "end": f"{end:.3f}"})
    _post(f"{base}/api/v1/admin/tsdb/delete_series?{query}", token, context, timeout)
    _post(f"{base}/api/v1/admin/tsdb/clean_tombstones", token, context, timeout)
    return end
