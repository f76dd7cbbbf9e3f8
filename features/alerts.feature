Feature: Alerts
  The runbook's P0/P1/P2 alert rules stay silent while the mesh is healthy, and
  each fires under the fault it describes. The drill applies every fault the
  target allows (experiments/alerts-*.json: istiod and east-west gateway down,
  a fault delay on the cross-cluster route, a certificate expiring within 7
  days, TLS handshakes without a client certificate), once per cluster as the
  fault cluster; an alert no fault could be applied for is not measurable.

  @ALERTS-QUIET
  Scenario: No runbook alert fires at steady state
    Given mesh traffic has run in every cluster
    Then none of the runbook's alert expressions returns a result in any cluster

  @ALERTS @drill @destructive
  Scenario: Each runbook alert fires under its fault, with each cluster as the fault cluster
    Given the target allows the drill experiments of the guarantee
    When the guarantee's drill runs with each cluster as the fault cluster
    Then every runbook alert fired under its fault in the drills
