Feature: Alerts
  The runbook's P0/P1/P2 alert rules stay silent while the mesh is healthy.

  @ALERTS-QUIET
  Scenario: No runbook alert fires at steady state
    Given mesh traffic has run in every cluster
    Then none of the runbook's alert expressions returns a result in any cluster
