# Synthetic feature for the runner's own tests: nothing is measured.
Feature: Runner machinery where one check is violated and another crashes

  @MTLS-STRICT
  Scenario: the mesh-wide check is violated
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is violated

  @ROUTING
  Scenario: the check itself breaks
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is crash
