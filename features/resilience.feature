Feature: Resilience drills
  The runbook's monthly disaster-recovery drill: the control plane is lost and
  recovered with the runbook's own steps (experiments/istiod-outage.json), and
  the circuit breaker is tripped by overload and failing hosts
  (experiments/circuit-breaker-trip.json). Destructive: the target's blast
  radius must allow the faults in every cluster.

  @CP-RECOVERY @drill @destructive
  Scenario: Each cluster's istiod is lost and restarted in turn while its sidecars serve
    Given the target allows the drill experiments of the guarantee
    When the guarantee's drill runs with each cluster as the fault cluster
    Then the guarantee held in every drill

  @CIRCUIT-BREAK @drill @destructive
  Scenario: The circuit breaker sheds overflow and ejects a failing host, from every cluster
    Given the target allows the drill experiments of the guarantee
    When the guarantee's drill runs with each cluster as the fault cluster
    Then the guarantee held in every drill
