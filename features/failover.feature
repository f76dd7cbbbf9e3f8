Feature: East-west failover drill
  The runbook's monthly disaster-recovery drill (Maintenance Procedures) and its
  P0 "cluster network partition / failover to backup": each cluster in turn loses
  its east-west gateway while the next cluster sends it traffic
  (experiments/eastwest-gateway-loss.json). Destructive: the target's blast radius
  must allow the fault in every cluster.

  @EW-FAILOVER @drill @destructive
  Scenario: Each cluster loses its east-west gateway in turn under traffic from another cluster
    Given the target allows the drill experiments of the guarantee
    When the guarantee's drill runs with each cluster as the fault cluster
    Then the guarantee held in every drill
