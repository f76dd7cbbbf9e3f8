"""MTLS-STRICT and MTLS-IDENTITY: plaintext is refused where STRICT is promised; callers are
who their certificate says, as the server sees them (XFCC)."""

from __future__ import annotations

import json
from typing import Any

from meshproof.checks.traffic import failures, statuses
from meshproof.clients.kube import ClusterApi
from meshproof.clients.prometheus import PromQL
from meshproof.sli.ratios import judge_ratio, success_ratio
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["judge_plaintext_refused", "judge_caller_identity", "mutual_tls_share",
           "strict_service_urls", "XFCC_HEADER"]

XFCC_HEADER = "X-Forwarded-Client-Cert"


def judge_plaintext_refused(results: list[dict[str, Any]], *, url: str,
                            max_accepted: float) -> Judgement:
    """Plaintext requests from outside the mesh to a STRICT workload must be reset.

    An answer of any status means the workload took plaintext (violated); a
    connection reset is what a STRICT sidecar does (FACTS.md: curl exits 56);
    refused or timed out says nothing about mTLS (not measurable).
    """
    accepted = sum(statuses(results).values())
    kinds = failures(results)
    evidence = {"url": url, "requests": len(results), "accepted": accepted,
                "failures": dict(kinds)}
    if not results:
        return Judgement(Verdict.NOT_MEASURABLE, f"no plaintext request was made to {url}",
                         evidence)
    if accepted > max_accepted:
        return Judgement(Verdict.VIOLATED,
                         f"{accepted} of {len(results)} plaintext requests to {url} were "
                         f"answered (statuses {dict(statuses(results))}); STRICT refuses them",
                         evidence)
    other = {k: v for k, v in kinds.items() if k != "reset"}
    if other:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"plaintext requests to {url} failed for reasons other than a reset "
                         f"({other}); check that the workload is running", evidence)
    return Judgement(Verdict.HELD,
                     f"all {len(results)} plaintext requests to {url} were reset", evidence)


def judge_caller_identity(result: dict[str, Any], *, expected_spiffe: str) -> Judgement:
    """The server's view of the caller (XFCC ``URI=``) is the caller's own SPIFFE id."""
    evidence: dict[str, Any] = {"expected": expected_spiffe, "status": result.get("status")}
    if result.get("status") != 200:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"the echo request failed ({result.get('status') or result.get('failure')}"
                         f": {result.get('error', '')})", evidence)
    try:
        headers = json.loads(result.get("body") or "{}").get("headers") or {}
    except ValueError:
        headers = {}
    values = headers.get(XFCC_HEADER) or []
    xfcc = values[0] if isinstance(values, list) and values else str(values or "")
    evidence["xfcc"] = xfcc
    uris = [part.split("=", 1)[1] for part in xfcc.split(";") if part.startswith("URI=")]
    if not xfcc:
        return Judgement(Verdict.VIOLATED, "the server saw no client certificate (no XFCC "
                         "header): the request did not arrive over mutual TLS", evidence)
    if uris != [expected_spiffe]:
        return Judgement(Verdict.VIOLATED, f"the server saw caller {uris or 'none'}, expected "
                         f"{expected_spiffe}", evidence)
    return Judgement(Verdict.HELD, f"the server saw the caller as {expected_spiffe}", evidence)


def mutual_tls_share(prom: PromQL, *, namespace: str, window_s: int,
                     required: float) -> Judgement:
    """Share of requests into ``namespace`` that arrived over mutual TLS (destination side).

    One query grouped by the security policy, so both counts come from the same evaluation.
    """
    selector = f'reporter="destination",destination_workload_namespace="{namespace}"'
    query = (f"sum by (connection_security_policy) "
             f"(increase(istio_requests_total{{{selector}}}[{window_s}s]))")
    by_policy = {s.labels.get("connection_security_policy", ""): s.value
                 for s in prom.instant(query)}
    total = sum(by_policy.values())
    judgement = judge_ratio(success_ratio(by_policy.get("mutual_tls", 0.0), total),
                            required=required,
                            what=f"mutual TLS share of requests into {namespace} on {prom.cluster}")
    judgement.evidence.update({"query": query, "by_policy": by_policy})
    return judgement


def strict_service_urls(api: ClusterApi, namespaces: list[str]) -> list[str]:
    """A plaintext URL per service port of ``namespaces``, by clusterIP: how a client without
    the mesh's name resolution reaches the workloads (kube-proxy picks the pod)."""
    urls = []
    for namespace in namespaces:
        for svc in api.get(f"/api/v1/namespaces/{namespace}/services").get("items") or []:
            ip = (svc.get("spec") or {}).get("clusterIP")
            if not ip or ip == "None":
                continue
            for port in (svc.get("spec") or {}).get("ports") or []:
                if port.get("protocol", "TCP") == "TCP":
                    urls.append(f"http://{ip}:{port['port']}/")
    return urls
