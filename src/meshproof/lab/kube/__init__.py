"""The lab's Kubernetes: an API server per cluster, its controllers and a kubelet."""
