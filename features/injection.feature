Feature: Sidecar injection
  The runbook's "Sidecar injection not working": every pod in a namespace
  labelled istio-injection=enabled runs an istio-proxy container.

  @INJECTION
  Scenario: Every pod of an injection-enabled namespace has a sidecar
    Given the probe agents are running in every cluster
    Then every pod in the injection-enabled namespaces has an istio-proxy container, the probe's new pod included
