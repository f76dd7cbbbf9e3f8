"""The probe agent the suite deploys into the mesh, and the suite's side of talking to it."""
