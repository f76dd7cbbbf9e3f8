Feature: Ingress gateway
  The runbook's "Configure Ingress Gateway": http redirects to https, TLS is
  served with the configured certificate, /api/v1 routes to api-service.

  @INGRESS
  Scenario: The public gateway redirects, serves its certificate and routes the API
    When a client outside the mesh calls the public host through each cluster's ingress gateway
    Then http is redirected to https, the configured certificate is served and the API prefix reaches its backend
