Feature: Mutual TLS
  The runbook's "Enable mTLS for Namespace": namespaces under a STRICT
  PeerAuthentication accept only mutual TLS, handshakes between sidecars
  succeed, and every caller is known by the identity of its service account.

  Background:
    Given the probe agents are running in every cluster

  @MTLS-STRICT
  Scenario: Namespaces promised STRICT refuse plaintext and carry only mutual TLS
    Given mesh traffic has run in every cluster
    When a client outside the mesh sends plaintext requests to each STRICT workload
    Then every plaintext request is reset in every cluster
    And all requests into STRICT namespaces arrived over mutual TLS

  @MTLS-HANDSHAKE
  Scenario: Handshakes between sidecars succeed
    Given mesh traffic has run in every cluster
    Then the inbound mutual TLS handshakes succeed at the guarantee's rate in every cluster

  @MTLS-IDENTITY
  Scenario: A server sees each caller by its own SPIFFE identity
    When an in-mesh client calls an echo service in its own cluster and in the other cluster
    Then the server sees the caller's SPIFFE identity every time
