Feature: Certificate rotation drill
  The runbook's "Force certificate renewal" and "Restart affected pods" (P0 mTLS
  handshake failures), done on purpose under traffic: each cluster in turn renews its
  ingress certificate through cert-manager and restarts a workload so its sidecars
  get new certificates from istiod, while its own in-mesh clients keep calling that
  workload (experiments/certificate-rotation.json). No handshake may fail, and the
  clusters keep one trust bundle. Destructive: the target's blast radius must allow
  the fault in every cluster.

  @CERT-ROTATION @drill @destructive
  Scenario: Each cluster renews its ingress certificate and rotates workload certificates in turn under traffic
    Given the target allows the drill experiments of the guarantee
    When the guarantee's drill runs with each cluster as the fault cluster
    Then the guarantee held in every drill
