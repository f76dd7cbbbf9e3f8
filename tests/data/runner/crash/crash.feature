# Synthetic feature for the runner's own tests: nothing is measured.
Feature: Runner machinery where a check crashes

  @MTLS-STRICT
  Scenario: the mesh-wide check holds
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is held

  @ROUTING
  Scenario: the check itself breaks
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is crash
