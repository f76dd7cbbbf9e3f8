Feature: Consul server loss drill
  Service discovery through a Consul leader change: each cluster in turn loses the
  pod of its Consul leader (experiments/consul-server-loss.json); a new leader must be
  elected and every catalog answer during and after the change must match the
  Kubernetes endpoints, as DISCOVERY demands at steady state. Destructive: the
  target's blast radius must allow the fault in every cluster.

  @DISCOVERY-FAILOVER @drill @destructive
  Scenario: Each cluster loses its Consul leader in turn and the catalog stays correct
    Given the target allows the drill experiments of the guarantee
    When the guarantee's drill runs with each cluster as the fault cluster
    Then the guarantee held in every drill
