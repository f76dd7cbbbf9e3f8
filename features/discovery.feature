Feature: Service discovery
  The runbook's SLO "Service discovery accuracy 100%: correct endpoint
  resolution", across Consul's catalog, Kubernetes and the sidecars.

  @DISCOVERY
  Scenario: Consul, Kubernetes and the sidecars resolve every service to the same endpoints
    Given the probe agents are running in every cluster
    Then every service under test resolves to the same endpoints in Consul, Kubernetes and an in-mesh sidecar, in every cluster
