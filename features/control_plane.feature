Feature: Control plane
  The runbook's SLO "Service mesh availability 99.9%: control plane uptime".

  @CP-AVAIL
  Scenario: istiod is available
    Given mesh traffic has run in every cluster
    Then istiod was up for the guarantee's share of its window in every cluster

  @MULTICLUSTER-SYNC
  Scenario: Each istiod watches the other clusters through their remote secrets
    Then every cluster has a remote secret for each other cluster and its istiod manages them
