"""ROUTING: the canary header goes to v2 only; the rest splits by the VirtualService weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshproof.checks.traffic import failures, statuses, versions
from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.sli.split import judge_exclusive_routing, judge_split
from meshproof.sli.verdict import Judgement

__all__ = ["canary_route", "judge_canary", "judge_weighted_split"]


def _with_traffic(judgement: Judgement, results: list[dict[str, Any]]) -> Judgement:
    judgement.evidence["statuses"] = {str(k): v for k, v in statuses(results).items()}
    judgement.evidence["failures"] = dict(failures(results))
    return judgement


def judge_canary(results: list[dict[str, Any]], *, expected: str, what: str,
                 min_total: int) -> Judgement:
    """Every answered request went to ``expected`` (e.g. v2 for ``env: canary``)."""
    return _with_traffic(judge_exclusive_routing(versions(results), expected=expected,
                                                 what=what, min_total=min_total), results)


def judge_weighted_split(results: list[dict[str, Any]], *, weights: Mapping[str, float],
                         alpha: float, tolerance: float, power: float,
                         what: str) -> Judgement:
    """The versions' counts agree with ``weights`` by an exact binomial test at ``alpha``."""
    counts = versions(results)
    return _with_traffic(judge_split({k: counts.get(k, 0) for k in weights}, weights,
                                     alpha=alpha, tolerance=tolerance, power=power, what=what),
                         results)


def canary_route(api: ClusterApi, namespaces: list[str], header: str, value: str,
                 path: str) -> str | None:
    """The URL (``path`` on it) of the service whose VirtualService routes ``header: value``."""
    for namespace in namespaces:
        try:
            services = api.get(f"/apis/networking.istio.io/v1/namespaces/{namespace}"
                               "/virtualservices").get("items") or []
        except NotFoundError:
            return None
        for vs in services:
            for http in (vs.get("spec") or {}).get("http") or []:
                for match in http.get("match") or []:
                    if ((match.get("headers") or {}).get(header) or {}).get("exact") == value:
                        host = str((vs.get("spec") or {}).get("hosts", [""])[0])
                        name = host.split(".")[0]
                        svc = api.get(f"/api/v1/namespaces/{namespace}/services/{name}")
                        port = svc["spec"]["ports"][0]["port"]
                        return f"http://{name}.{namespace}:{port}{path}"
    return None
