# Synthetic feature for the runner's own tests: a misspelt guarantee id must
# stop the run (unknown marker under --strict-markers), not be ignored.
Feature: Runner machinery with a misspelt guarantee id

  @MTLS-STRICTT
  Scenario: the tag names no guarantee
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is held
