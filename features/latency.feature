Feature: Cross-cluster latency
  The runbook's SLO "Cross-cluster latency < 100ms (p95)", measured from the
  client side's Istio histogram while traffic crosses the east-west gateways.

  @XC-LATENCY
  Scenario: Cross-cluster requests stay under the p95 bound
    Given the probe agents are running in every cluster
    And mesh traffic has run in every cluster
    Then for every ordered pair of clusters the share of requests at or under the bound meets the quantile
