"""Every wait the suite makes, in one place.

Each field is the longest a conformant mesh may take for that thing; a wait
that runs past it is a failure of the mesh (or the lab), not of the suite.
Targets may override them under ``timeouts:``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["Timeouts", "DEFAULT_TIMEOUTS"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Maximum durations, in seconds."""

    poll_interval: float = 0.5
    """How often an ``eventually`` / ``consistently`` re-checks its condition."""
    api_request: float = 15.0
    """One request to a Kubernetes API server, Prometheus, Consul or a probe agent."""
    lab_ready: float = 360.0
    """`meshproof lab up` until both clusters report Ready (with the mesh installed)."""
    lab_mesh: float = 300.0
    """Installing the mesh into a started lab until every workload is Ready and scraped."""
    lab_stop: float = 30.0
    """`meshproof lab down` until every lab process has exited."""
    pod_ready: float = 120.0
    """A created pod (probe agent, restarted workload) until it is Ready."""
    rollout: float = 180.0
    """A Deployment rollout until every replica is updated and available."""
    config_propagation: float = 30.0
    """A mesh config change (VirtualService, PeerAuthentication, ...) until proxies act on it."""
    discovery_convergence: float = 30.0
    """An endpoint change until Consul, Kubernetes and the sidecars agree."""
    scrape_settle: float = 20.0
    """After traffic, until Prometheus has scraped it (a few scrape intervals)."""
    eject: float = 60.0
    """A failing endpoint until the outlier detector ejects it."""
    recover: float = 120.0
    """A restored component until traffic through it is back."""
    proxy_resync: float = 60.0
    """istiod back until every proxy is in sync again."""
    cert_renewal: float = 120.0
    """A certificate in its renewal window until it has been renewed."""
    alert_fire: float = 120.0
    """A fault until its runbook alert expression returns a result."""
    watch_interval: float = 60.0
    """`meshproof run --watch`: from the start of one round of checks to the start of the next."""
    watch_duration: float = 3600.0
    """`meshproof run --watch`: how long it keeps checking (an upgrade's length) before stopping."""
    run_lease: float = 30.0
    """A run's lock Lease without renewal until the run counts as dead and may be swept."""

    def with_overrides(self, overrides: dict[str, Any]) -> Timeouts:
        """A copy with the named fields replaced; unknown names raise ``KeyError``."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise KeyError(", ".join(unknown))
        return replace(self, **{k: float(v) for k, v in overrides.items()})


DEFAULT_TIMEOUTS = Timeouts()
