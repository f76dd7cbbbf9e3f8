Feature: East-west gateways
  The runbook's SLO "Gateway availability 99.95%: east-west gateway uptime".

  @GW-AVAIL
  Scenario: The east-west gateway is available
    Given mesh traffic has run in every cluster
    Then the east-west gateway was up for the guarantee's share of its window in every cluster
