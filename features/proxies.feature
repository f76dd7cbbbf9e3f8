Feature: Envoy proxy health
  The runbook's SLO "Envoy proxy health 99%" and its daily "Verify proxy sync
  status" (istioctl proxy-status).

  @PROXY-HEALTH
  Scenario: Sidecars are Ready and in sync with istiod
    Then the share of Ready and synced sidecars meets the guarantee in every cluster

  @ENVOY-MEMORY
  Scenario: No proxy uses more memory than the bound
    Then no sidecar or gateway proxy has allocated more memory than the guarantee allows in any cluster
