"""The ``istio/proxyv2`` image in the lab: pilot-agent (certificates, config) around the proxy."""
