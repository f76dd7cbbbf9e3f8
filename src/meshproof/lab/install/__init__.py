"""What installing the mesh creates in a lab cluster: Istio's CRDs and control plane objects."""
