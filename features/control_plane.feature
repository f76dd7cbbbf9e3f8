Feature: Control plane
  The runbook's SLO "Service mesh availability 99.9%: control plane uptime".

  @CP-AVAIL
  Scenario: istiod is available
    Then istiod was up for the guarantee's share of its window in every cluster
