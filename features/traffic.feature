Feature: Traffic management
  The runbook's "Configure Traffic Routing": requests with header env: canary
  go to v2 only, all other traffic splits 90/10 between v1 and v2.

  @ROUTING
  Scenario: The canary header and the weighted split route as configured
    Given the probe agents are running in every cluster
    When an in-mesh client sends canary requests and plain requests to the routed service
    Then every canary request is answered by the canary version
    And the plain requests split by the route's weights
