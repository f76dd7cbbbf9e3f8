# Synthetic feature for the runner's own tests: every outcome is chosen by the
# example, nothing is measured. Tags are real catalog ids so the runner's
# mapping to guarantees, clusters and profiles is exercised.
Feature: Runner machinery with mixed outcomes

  @MTLS-STRICT
  Scenario Outline: every cluster holds
    Given the synthetic check on cluster <cluster>
    Then the synthetic outcome is <outcome>

    Examples:
      | cluster | outcome |
      | aws-eks | held    |
      | gcp-gke | held    |

  @MTLS-HANDSHAKE
  Scenario Outline: one cluster violates
    Given the synthetic check on cluster <cluster>
    Then the synthetic outcome is <outcome>

    Examples:
      | cluster | outcome  |
      | aws-eks | held     |
      | gcp-gke | violated |

  @XC-LATENCY
  Scenario Outline: one cluster cannot be measured
    Given the synthetic check on cluster <cluster>
    When the synthetic check records what the fixtures give it
    Then the synthetic outcome is <outcome>

    Examples:
      | cluster | outcome        |
      | aws-eks | held           |
      | gcp-gke | not-measurable |

  @DISCOVERY
  Scenario: a judgement decides the mesh-wide check
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is judged-violated

  @PROXY-HEALTH
  Scenario: a recorded judgement that was never asserted
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is recorded-violated

  @INJECTION
  Scenario: the mesh-wide check cannot be measured
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is not-measurable

  @ROUTING
  Scenario: an inconclusive judgement
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is inconclusive

  @INGRESS
  Scenario: a plain skip
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is skipped

  @CERT-RENEW
  Scenario: a step that quotes a credential
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is leak

  @CP-RECOVERY
  Scenario: a drill-only guarantee is not run by the nightly profile
    Given the synthetic check on the whole mesh
    Then the synthetic outcome is crash
