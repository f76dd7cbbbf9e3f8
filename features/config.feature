Feature: Mesh configuration
  The runbook's daily "Check for configuration errors" (istioctl analyze).

  @CONFIG-VALID
  Scenario: The mesh configuration of the namespaces under test has no errors
    Then analysing the live configuration of every cluster finds no errors
