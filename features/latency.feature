Feature: Cross-cluster latency
  The runbook's SLO "Cross-cluster latency < 100ms (p95)", measured from the
  client side's Istio histogram while traffic crosses the east-west gateways,
  under Locust load through every cluster's ingress gateway; the exact
  latencies Locust's clients see there cross-check the histogram.

  @XC-LATENCY
  Scenario: Cross-cluster requests stay under the p95 bound under load
    Given the probe agents are running in every cluster
    And Locust load runs through every cluster's ingress gateway beside the mesh traffic
    And mesh traffic has run in every cluster
    Then for every ordered pair of clusters the share of requests at or under the bound meets the quantile
    And through every cluster's ingress gateway the clients' exact share at or under the bound meets the quantile
