"""MTLS-HANDSHAKE: TLS handshakes on the sidecars' inbound listener, from Envoy's counters."""

from __future__ import annotations

from meshproof.clients.prometheus import PromQL
from meshproof.sli.ratios import handshake_success_ratio, judge_ratio
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["judge_handshakes", "INBOUND_LISTENER"]

INBOUND_LISTENER = "0.0.0.0_15006"


def judge_handshakes(prom: PromQL, *, window_s: int, required: float) -> Judgement:
    selector = f'listener_address="{INBOUND_LISTENER}"'
    ok_query = f"sum(increase(envoy_listener_ssl_handshake{{{selector}}}[{window_s}s]))"
    error_query = f"sum(increase(envoy_listener_ssl_connection_error{{{selector}}}[{window_s}s]))"
    present = prom.instant(f"count(envoy_listener_ssl_handshake{{{selector}}})")
    evidence = {"handshakes_query": ok_query, "errors_query": error_query,
                "prometheus": prom.cluster, "window_s": window_s}
    if not present:
        return Judgement(
            Verdict.NOT_MEASURABLE,
            f"{prom.cluster}: no envoy_listener_ssl_* series; add '.*ssl.*' to "
            f"meshConfig.defaultConfig.proxyStatsMatcher.inclusionRegexps", evidence)
    handshakes = prom.scalar(ok_query) or 0.0
    errors = prom.scalar(error_query) or 0.0
    judgement = judge_ratio(handshake_success_ratio(handshakes, errors), required=required,
                            what=f"inbound mTLS handshakes on {prom.cluster}")
    judgement.evidence.update(evidence)
    return judgement
