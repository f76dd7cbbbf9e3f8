# Synthetic feature for the runner's own tests: a check that takes long, so a
# test can interrupt the run in the middle of it. Nothing is measured.
Feature: Runner machinery with a long check

  @MTLS-STRICT
  Scenario: the check takes long
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is slow
