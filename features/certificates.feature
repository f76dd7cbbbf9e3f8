Feature: Certificates
  The runbook's SLO "Certificate renewal success 100%" and its P2 alert
  "Certificate expiring < 7 days".

  @CERT-RENEW
  Scenario: Certificates are renewing and far from expiry
    Then every cert-manager certificate is Ready, renewing and outside the expiry horizon in every cluster
