# Synthetic feature for the runner's own tests: nothing is measured.
Feature: Runner machinery where every check that runs holds

  @MTLS-STRICT
  Scenario Outline: every cluster holds
    Given the synthetic check on cluster <cluster>
    Then the synthetic outcome is <outcome>

    Examples:
      | cluster | outcome |
      | aws-eks | held    |
      | gcp-gke | held    |

  @DISCOVERY
  Scenario: the mesh-wide check holds
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is held

  @INGRESS
  Scenario: a scenario without steps measures nothing
