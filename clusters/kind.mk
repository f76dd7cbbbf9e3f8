# make kind-up / make kind-down: two kind clusters, aws-eks and gcp-gke, with a
# multi-primary multi-network Istio mesh, Consul, cert-manager, Prometheus and
# the workloads the suite tests. Needs Docker and ~8-12 GB of RAM (docs/kind.md).
# Included by the root Makefile. Each line of kind-up is one step, in order;
# `make -n kind-up` prints the plan. Versions: clusters/versions.env.

KIND_SCRIPTS := clusters/scripts

.PHONY: kind-up kind-down

kind-up: export MESHPROOF_PYTHON := $(abspath $(BIN)/python)
kind-up: $(STAMP)
	@bash $(KIND_SCRIPTS)/check-tools.sh                      # kind, kubectl, istioctl, helm, docker: present, versions named
	@bash $(KIND_SCRIPTS)/host-sysctls.sh                     # inotify limits for two clusters (checked, not changed)
	@bash $(KIND_SCRIPTS)/create-clusters.sh                  # kind clusters aws-eks, gcp-gke; contexts kind-<c> renamed <c>
	@bash $(KIND_SCRIPTS)/metallb.sh                          # MetalLB, one LoadBalancer range per cluster from the kind network
	@bash $(KIND_SCRIPTS)/istio-namespace.sh                  # istio-system labelled topology.istio.io/network
	@bash $(KIND_SCRIPTS)/plugin-ca.sh                        # python -m meshproof.pki: shared root, intermediates, secret cacerts
	@bash $(KIND_SCRIPTS)/istio-install.sh                    # istioctl install -f clusters/istio/<c>.yaml
	@bash $(KIND_SCRIPTS)/eastwest-gateway.sh                 # east-west gateway + cross-network-gateway (15443 AUTO_PASSTHROUGH)
	@bash $(KIND_SCRIPTS)/remote-secrets.sh                   # istioctl create-remote-secret --server=https://<control-plane IP>:6443
	@bash $(KIND_SCRIPTS)/cert-manager.sh                     # cert-manager, ingress CA ClusterIssuer, Certificate tls-cert
	@bash $(KIND_SCRIPTS)/consul.sh                           # helm: Consul with catalog sync
	@bash $(KIND_SCRIPTS)/prometheus.sh                       # one Prometheus per cluster
	@bash $(KIND_SCRIPTS)/workloads.sh                        # namespaces, PeerAuthentication, sample and production workloads
	@bash $(KIND_SCRIPTS)/wait-ready.sh                       # every Deployment, gateway, Prometheus, Consul, tls-cert Ready
	@bash $(KIND_SCRIPTS)/write-target.sh                     # .meshproof/kind/target.yaml for meshproof run --target

kind-down:
	@bash $(KIND_SCRIPTS)/kind-down.sh                        # delete both clusters and .meshproof/kind
