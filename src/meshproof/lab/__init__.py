"""The lab: an emulator of the two-cluster mesh that serves the real interfaces.

Nothing outside ``meshproof.lab`` imports it except the ``meshproof lab`` command;
the suite reaches it only through the Kubernetes API, Prometheus, Consul and
plain HTTP/TLS, exactly as it reaches a real target.
"""
