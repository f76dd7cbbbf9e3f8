"""CONFIG-VALID: the mesh configuration has no analysis errors.

Errors violate the guarantee; warnings (deprecated fields and API versions,
failover without outlier detection, proxies one minor version behind) are
recorded as evidence and never change the verdict.
"""

from __future__ import annotations

from meshproof.analysis import ERROR, Finding, analyze
from meshproof.clients.kube import ClusterApi
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["judge_config", "judge_findings"]


def judge_findings(findings: list[Finding], namespaces: list[str], *,
                   max_errors: int) -> Judgement:
    """VIOLATED with more than ``max_errors`` errors, else HELD; warnings are evidence."""
    errors = [f for f in findings if f.level == ERROR]
    warnings = [f for f in findings if f.level != ERROR]
    evidence = {"errors": [str(f) for f in errors], "warnings": [str(f) for f in warnings],
                "error_count": len(errors), "warning_count": len(warnings)}
    if len(errors) > max_errors:
        return Judgement(Verdict.VIOLATED, f"{len(errors)} configuration errors, first: "
                         f"{errors[0]}", evidence)
    return Judgement(Verdict.HELD, f"no configuration errors in {', '.join(namespaces)} "
                     f"({len(warnings)} warnings)", evidence)


def judge_config(apis: dict[str, ClusterApi], namespaces: list[str], *,
                 max_errors: int) -> Judgement:
    """Analyse the live configuration of every cluster and judge it."""
    return judge_findings(analyze(apis, namespaces), namespaces, max_errors=max_errors)
