"""The suite's clients for a target's real interfaces: Kubernetes, Prometheus, Consul, Envoy."""
