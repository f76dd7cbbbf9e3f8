"""Go durations (``2160h``, ``1h30m``) as cert-manager reads them, and its time rules.

Lifetime rules follow cert-manager/cert-manager ``pkg/apis/certmanager/v1``
(``DefaultCertificateDuration`` 90 days, ``MinimumCertificateDuration`` 1h,
``MinimumRenewBefore`` 5m) and ``pkg/util/pki/renewaltime.go`` (renewal at
notAfter − renewBefore; without renewBefore, or with one not shorter than the
certificate's lifetime, at 2/3 of the lifetime).
"""

from __future__ import annotations

import datetime
import re

from meshproof.errors import ConfigError

__all__ = [
    "DEFAULT_DURATION",
    "MIN_DURATION",
    "MIN_RENEW_BEFORE",
    "format_duration",
    "format_time",
    "parse_duration",
    "parse_time",
    "renewal_time",
]

DEFAULT_DURATION = datetime.timedelta(days=90)
MIN_DURATION = datetime.timedelta(hours=1)
MIN_RENEW_BEFORE = datetime.timedelta(minutes=5)

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> datetime.timedelta:
    """Go's ``time.ParseDuration``: ``"2160h"``, ``"1h30m"``, ``"-1.5h"``, ``"0"``."""
    s = str(text).strip()
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    if body == "0":
        return datetime.timedelta(0)
    pos, seconds = 0, 0.0
    for m in _PART.finditer(body):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ConfigError(f"cannot parse duration {text!r}: not a Go duration like 2160h or 1h30m")
    return datetime.timedelta(seconds=sign * seconds)


def format_duration(value: datetime.timedelta) -> str:
    """Go's ``Duration.String`` for whole seconds: ``2160h0m0s``, ``5m0s``, ``0s``."""
    total = int(value.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    if total == 0:
        return "0s"
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{sign}{h}h{m}m{s}s"
    if m:
        return f"{sign}{m}m{s}s"
    return f"{sign}{s}s"


def format_time(value: datetime.datetime) -> str:
    """RFC 3339 in UTC, whole seconds, as Kubernetes writes ``metav1.Time``."""
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(str(text))


def renewal_time(not_before: datetime.datetime, not_after: datetime.datetime,
                 renew_before: datetime.timedelta | None) -> datetime.datetime:
    """When cert-manager renews a certificate valid from ``not_before`` to ``not_after``."""
    lifetime = not_after - not_before
    if renew_before is None or renew_before >= lifetime:
        renew_before = lifetime / 3
    # cert-manager truncates the renewal time to whole seconds.
    return (not_after - renew_before).replace(microsecond=0)
