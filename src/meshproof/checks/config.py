"""CONFIG-VALID: the mesh configuration has no analysis errors."""

from __future__ import annotations

from meshproof.analysis import analyze
from meshproof.clients.kube import ClusterApi
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["judge_config"]


def judge_config(apis: dict[str, ClusterApi], namespaces: list[str], *,
                 max_errors: int) -> Judgement:
    findings = analyze(apis, namespaces)
    errors = [f for f in findings if f.level == "Error"]
    evidence = {"errors": [str(f) for f in errors],
                "warnings": [str(f) for f in findings if f.level != "Error"]}
    if len(errors) > max_errors:
        return Judgement(Verdict.VIOLATED, f"{len(errors)} configuration errors, first: "
                         f"{errors[0]}", evidence)
    return Judgement(Verdict.HELD, f"no configuration errors in {', '.join(namespaces)} "
                     f"({len(findings)} warnings)", evidence)
