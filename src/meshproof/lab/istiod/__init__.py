"""The lab's istiod: config translation and push, the CA, and sidecar injection."""
