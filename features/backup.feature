Feature: Backup and restore drill
  The runbook's Disaster Recovery "Backup Strategy" and "Recovery Procedures"
  (Maintenance Procedures): each cluster in turn has its mesh configuration backed
  up, loses it from the namespaces under test, gets it back with the runbook's
  restore, and must then hold the very mesh it had, with traffic answered again
  (experiments/backup-restore.json). Destructive: the target's blast radius must
  allow mesh-config-loss in every cluster.

  @BACKUP-RESTORE @drill @destructive
  Scenario: Each cluster's mesh configuration is lost and restored from the runbook's backup
    Given the target allows the drill experiments of the guarantee
    When the guarantee's drill runs with each cluster as the fault cluster
    Then the restored mesh configuration equals the original in every cluster
