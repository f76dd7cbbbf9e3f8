"""CERT-ROTATION's verdict from what the certificate-rotation drill measured (pure functions).

The drill renews the fault cluster's ingress Certificate, restarts a workload so its
sidecars get new certificates, and reads the trust bundle of every cluster before and
after, all under cross-cluster traffic. The guarantee holds only when every part held:
no failed mTLS handshake in any cluster, the renewal done in time with a certificate
issued after the fault began, every restarted sidecar holding a certificate issued
after it, and one trust bundle across the clusters throughout.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshproof.catalog import EffectiveThresholds
from meshproof.chaos.judge import combine, judge_bound
from meshproof.sli.ratios import judge_ratio, success_ratio
from meshproof.sli.verdict import Judgement, Verdict

__all__ = [
    "GUARANTEE",
    "judge_bundles",
    "judge_certificate_rotation",
    "judge_handshake_errors",
    "judge_renewal",
    "judge_workload_rotation",
    "issued_after",
    "parse_time",
]

GUARANTEE = "CERT-ROTATION"


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 time (``2026-01-02T03:04:05Z``, as cert-manager and Envoy write it) as
    seconds since the epoch; None for an empty value."""
    if not text:
        return None
    value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def issued_after(valid_from: float | None, expires: float | None, *, start: float,
                 expiries_before: Iterable[float]) -> bool:
    """Whether a sidecar's certificate was issued after ``start``.

    Envoy's ``/certs`` gives ``valid_from``; when it is missing, a certificate that expires
    later than every certificate the workload held before ``start`` (same TTL) is a new one.
    Certificate times have whole seconds, so ``start`` is compared rounded down.
    """
    if valid_from is not None:
        return valid_from >= int(start)
    before = list(expiries_before)
    return expires is not None and bool(before) and expires > max(before)


def judge_handshake_errors(errors: Mapping[str, float | None], handshakes: Mapping[str, float],
                           *, limit: float) -> Judgement:
    """Failed inbound mTLS handshakes per cluster over the fault window (None: the cluster
    exports no ``envoy_listener_ssl_*`` series)."""
    evidence: dict[str, Any] = {"handshake_errors": dict(errors), "handshakes": dict(handshakes),
                                "max_handshake_failures": limit}
    silent = sorted(c for c, v in errors.items() if v is None)
    if not errors or silent:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"no envoy_listener_ssl_* series on {', '.join(silent) or 'any cluster'};"
                         " add '.*ssl.*' to meshConfig.defaultConfig.proxyStatsMatcher."
                         "inclusionRegexps", evidence)
    total = sum(float(v or 0.0) for v in errors.values())
    if sum(handshakes.values()) <= 0 and total <= 0:
        return Judgement(Verdict.NOT_MEASURABLE,
                         "no mTLS handshake on any sidecar during the rotation", evidence)
    if total > limit:
        worst = max(errors, key=lambda c: float(errors[c] or 0.0))
        return Judgement(Verdict.VIOLATED,
                         f"{total:g} mTLS handshakes failed during the rotation (limit "
                         f"{limit:g}; {worst}: {float(errors[worst] or 0.0):g})", evidence)
    return Judgement(Verdict.HELD, f"{sum(handshakes.values()):g} mTLS handshakes, {total:g} "
                     f"failed (limit {limit:g})", evidence)


def judge_renewal(renewal: Mapping[str, Any], *, limit: float, start: float) -> Judgement:
    """The forced renewal: done within ``limit`` seconds, by a certificate whose notBefore is
    not before the fault's start.

    ``renewal``: ``certificate``, ``renew_s`` (None: not renewed), ``waited_s``,
    ``not_before`` (RFC 3339), ``failure`` (the Issuing condition's message when it failed).
    """
    name = renewal.get("certificate", "the certificate")
    bound = judge_bound(renewal.get("renew_s"), limit=limit,
                        waited=float(renewal.get("waited_s") or 0.0), key="renew_s",
                        what=f"renewal of {name}")
    bound.evidence.update({k: renewal.get(k) for k in ("revision_before", "revision",
                                                       "not_before", "failure")})
    if bound.verdict is not Verdict.HELD:
        failure = renewal.get("failure")
        reason = f"{bound.reason}: {str(failure)[:200]}" if failure else bound.reason
        return Judgement(bound.verdict, reason, bound.evidence)
    not_before = parse_time(renewal.get("not_before"))
    if not_before is None or not_before < int(start):
        return Judgement(Verdict.VIOLATED, f"the renewed {name} has notBefore "
                         f"{renewal.get('not_before') or 'unset'}, before the fault began",
                         bound.evidence)
    return bound


def judge_workload_rotation(rotation: Mapping[str, Any], *, required: float) -> Judgement:
    """The restarted workload: the share of its sidecars holding a certificate issued after
    the fault's start. ``rotation``: ``pods``, ``rotated``, ``stale`` (names)."""
    pods, rotated = int(rotation.get("pods") or 0), int(rotation.get("rotated") or 0)
    judgement = judge_ratio(success_ratio(rotated, pods), required=required,
                            what="restarted sidecars holding a certificate issued after the "
                                 "fault began")
    judgement.evidence.update({"workload": rotation.get("workload"),
                               "stale": list(rotation.get("stale") or [])[:20]})
    return judgement


def judge_bundles(readings: Sequence[Mapping[str, Any]], *, limit: float) -> Judgement:
    """The trust bundles read before and after, one per cluster and moment: at most
    ``limit`` distinct ones. ``readings``: ``moment``, ``cluster``, ``roots`` (fingerprints;
    empty: no bundle found)."""
    evidence: dict[str, Any] = {"bundles": [dict(r) for r in readings],
                                "max_trust_bundles": limit}
    missing = sorted({f"{r['cluster']} ({r['moment']})" for r in readings if not r["roots"]})
    if not readings:
        return Judgement(Verdict.NOT_MEASURABLE, "no trust bundle was read", evidence)
    if missing:
        return Judgement(Verdict.VIOLATED, f"no trust bundle in {', '.join(missing)}", evidence)
    moments = {str(r["moment"]) for r in readings}
    if not {"before", "after"} <= moments:
        return Judgement(Verdict.NOT_MEASURABLE, f"trust bundles read only {', '.join(moments)}"
                         " the rotation", evidence)
    distinct: dict[frozenset[str], list[str]] = {}
    for r in readings:
        distinct.setdefault(frozenset(r["roots"]), []).append(f"{r['cluster']} {r['moment']}")
    evidence["distinct"] = len(distinct)
    if len(distinct) > limit:
        groups = "; ".join(", ".join(where) for where in distinct.values())
        return Judgement(Verdict.VIOLATED, f"{len(distinct)} different trust bundles across "
                         f"the clusters (limit {limit:g}): {groups}", evidence)
    clusters = sorted({str(r["cluster"]) for r in readings})
    return Judgement(Verdict.HELD, f"one trust bundle in {', '.join(clusters)} before and "
                     "after the rotation", evidence)


def judge_certificate_rotation(measured: Mapping[str, Any],
                               thresholds: EffectiveThresholds) -> Judgement:
    """CERT-ROTATION from ``measured``: ``start`` (the fault's start, epoch seconds),
    ``handshake_errors`` / ``handshakes`` (per cluster), ``renewal``, ``rotation``,
    ``bundles`` (see the part judges)."""
    return combine(GUARANTEE, {
        "handshakes": judge_handshake_errors(
            measured["handshake_errors"], measured["handshakes"],
            limit=float(thresholds["max_handshake_failures"])),
        "renewal": judge_renewal(measured["renewal"], limit=float(thresholds["max_renew_s"]),
                                 start=float(measured["start"])),
        "workloads": judge_workload_rotation(measured["rotation"],
                                             required=float(thresholds["min_rotated_ratio"])),
        "trust": judge_bundles(measured["bundles"],
                               limit=float(thresholds["max_trust_bundles"])),
    })
