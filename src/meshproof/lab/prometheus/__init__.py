"""A real Prometheus (Debian's binary) per lab cluster, run as the program of ``prom/prometheus``."""
