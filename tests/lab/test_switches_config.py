"""The configuration break switches (``meshproof.lab.switches.config``): what each one changes
through the Kubernetes API, that heal puts back exactly what was there, and the trust domain
aliases istiod applies to the SANs a client accepts.

The e2e negative controls (tests/e2e/test_nightly_lab.py) prove what the nightly run makes of
each switch; these tests run on bare clusters with Istio's CRDs and the runbook's objects."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from meshproof.analysis import analyze
from meshproof.clients.kube import connect
from meshproof.lab.install.crds import istio_crds
from meshproof.lab.istiod.translate import _with_trust_domain_aliases
from meshproof.lab.mesh.config import OutboundCluster
from meshproof.lab.switches import SWITCH_BREAKS
from meshproof.lab.switches.config import (
    BREAKS,
    DRIFTED_WEIGHTS,
    MOVED_CLUSTER,
    MOVED_TRUST_DOMAIN,
    _with_trust_domain,
)
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually
from tests.support.lab import RunningLab, lab_command, running_lab

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "clusters" / "workloads" / "common" / "production"
MESH_CONFIG = """\
trustDomain: cluster.local
accessLogFile: /dev/stdout
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  meshId: mesh1
rootNamespace: istio-system
"""


# -- pure logic ----------------------------------------------------------------------------

def test_aliases_add_every_spiffe_san_under_each_alias_domain() -> None:
    clusters = [
        OutboundCluster(service="catalog.production.svc.cluster.local", port=8080,
                        subject_alt_names=["spiffe://cluster.local/ns/production/sa/catalog"]),
        OutboundCluster(service="plain.sample.svc.cluster.local", port=80,
                        tls_mode="DISABLE"),
    ]
    _with_trust_domain_aliases(clusters, ["gcp-gke.local", "old.example"])
    assert clusters[0].subject_alt_names == [
        "spiffe://cluster.local/ns/production/sa/catalog",
        "spiffe://gcp-gke.local/ns/production/sa/catalog",
        "spiffe://old.example/ns/production/sa/catalog",
    ]
    assert clusters[1].subject_alt_names == []


def test_without_aliases_the_sans_are_left_as_they_are() -> None:
    sans = ["spiffe://cluster.local/ns/sample/sa/default", "not-a-spiffe-id"]
    clusters = [OutboundCluster(service="s", port=1, subject_alt_names=list(sans))]
    _with_trust_domain_aliases(clusters, [])
    assert clusters[0].subject_alt_names == sans
    _with_trust_domain_aliases(clusters, ["other.local"])
    assert "not-a-spiffe-id" in clusters[0].subject_alt_names
    assert "spiffe://other.local/ns/sample/sa/default" in clusters[0].subject_alt_names


def test_moving_the_trust_domain_keeps_the_rest_of_the_mesh_config() -> None:
    moved = yaml.safe_load(_with_trust_domain(MESH_CONFIG, "gcp-gke.local", ["cluster.local"]))
    assert moved["trustDomain"] == "gcp-gke.local"
    assert moved["trustDomainAliases"] == ["cluster.local"]
    assert moved["defaultConfig"] == yaml.safe_load(MESH_CONFIG)["defaultConfig"]
    kept = yaml.safe_load(_with_trust_domain(
        _with_trust_domain(MESH_CONFIG, None, ["a.local"]), None, ["a.local", "b.local"]))
    assert kept["trustDomain"] == "cluster.local"
    assert kept["trustDomainAliases"] == ["a.local", "b.local"]


def test_each_configuration_switch_is_a_negative_control_of_one_guarantee() -> None:
    assert {name: set(ids) for name, ids in BREAKS.items()} == {
        "trust-domain-alias": {"MTLS-IDENTITY"}, "route-weights": {"ROUTING"},
        "no-https-redirect": {"INGRESS"}, "dangling-route": {"CONFIG-VALID"}}
    assert all(SWITCH_BREAKS[name] == ids for name, ids in BREAKS.items())


# -- on a lab ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """Bare clusters with Istio's CRDs, the istio ConfigMap and the runbook's routes."""
    with running_lab(tmp_path_factory.mktemp("switches")) as lab:
        for context in lab.contexts:
            api = lab.client(context)
            for crd in istio_crds():
                body: Any = crd  # the client sends a plain dict as it is
                client.ApiextensionsV1Api(api).create_custom_resource_definition(body)
            core = client.CoreV1Api(api)
            for namespace in ("istio-system", "sample", "production"):
                core.create_namespace(client.V1Namespace(
                    metadata=client.V1ObjectMeta(name=namespace)))
            core.create_namespaced_config_map("istio-system", client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="istio"), data={"mesh": MESH_CONFIG}))
        _wait_for_crds(lab)
        for context in lab.contexts:
            for path in ("catalog-routing.yaml", "public-ingress.yaml"):
                for obj in yaml.safe_load_all((PRODUCTION / path).read_text()):
                    group, version = obj["apiVersion"].split("/")
                    client.CustomObjectsApi(lab.client(context)).create_namespaced_custom_object(
                        group, version, obj["metadata"]["namespace"],
                        obj["kind"].lower() + "s", obj)
        yield lab


def _wait_for_crds(lab: RunningLab) -> None:
    def served() -> None:
        for context in lab.contexts:
            client.CustomObjectsApi(lab.client(context)).list_namespaced_custom_object(
                "networking.istio.io", "v1", "production", "virtualservices")

    eventually(served, timeout=DEFAULT_TIMEOUTS.api_request,
               interval=DEFAULT_TIMEOUTS.poll_interval, what="Istio CRDs served")


def _get(lab: RunningLab, context: str, namespace: str, plural: str, name: str) -> Any:
    return client.CustomObjectsApi(lab.client(context)).get_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, plural, name)


def _mesh(lab: RunningLab, context: str) -> str:
    cm = client.CoreV1Api(lab.client(context)).read_namespaced_config_map("istio", "istio-system")
    return str((cm.data or {})["mesh"])


def _switch(lab: RunningLab, verb: str, name: str) -> None:
    proc = lab_command(lab.root, verb, name)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == f"lab: {'broke' if verb == 'break' else 'healed'} {name}"


@pytest.mark.lab
def test_route_weights_edits_only_the_split_and_heal_restores_it(lab: RunningLab) -> None:
    before = {c: _get(lab, c, "production", "virtualservices", "catalog")["spec"]
              for c in lab.contexts}
    _switch(lab, "break", "route-weights")
    _switch(lab, "break", "route-weights")  # a second break keeps the first original
    for context in lab.contexts:
        http = _get(lab, context, "production", "virtualservices", "catalog")["spec"]["http"]
        assert http[0] == before[context]["http"][0], "the canary route is left alone"
        assert [r["weight"] for r in http[1]["route"]] == list(DRIFTED_WEIGHTS)
    _switch(lab, "heal", "route-weights")
    assert {c: _get(lab, c, "production", "virtualservices", "catalog")["spec"]
            for c in lab.contexts} == before


@pytest.mark.lab
def test_no_https_redirect_drops_only_the_redirect(lab: RunningLab) -> None:
    before = {c: _get(lab, c, "istio-system", "gateways", "public-gateway")["spec"]
              for c in lab.contexts}
    _switch(lab, "break", "no-https-redirect")
    for context in lab.contexts:
        servers = _get(lab, context, "istio-system", "gateways", "public-gateway")["spec"][
            "servers"]
        expected = copy.deepcopy(before[context]["servers"])
        del expected[0]["tls"]
        assert servers == expected
    _switch(lab, "heal", "no-https-redirect")
    assert {c: _get(lab, c, "istio-system", "gateways", "public-gateway")["spec"]
            for c in lab.contexts} == before


@pytest.mark.lab
def test_dangling_route_fails_analysis_until_healed(lab: RunningLab) -> None:
    apis = {c: connect(c, context=c, kubeconfig=lab.kubeconfig, timeout=10.0)
            for c in lab.contexts}
    # The runbook's routes point at services this bare lab does not run; only the dangling
    # route's findings count here.
    def reviews_errors() -> list[str]:
        return [str(f) for f in analyze(apis, ["sample", "production"])
                if f.level == "Error" and f.object == "VirtualService production/reviews"]

    assert reviews_errors() == []
    _switch(lab, "break", "dangling-route")
    errors = reviews_errors()
    assert len(errors) == len(lab.contexts), errors
    assert all("ReferencedResourceNotFound" in e and "reviews.production.svc.cluster.local"
               in e for e in errors)
    _switch(lab, "heal", "dangling-route")
    assert reviews_errors() == []


@pytest.mark.lab
def test_trust_domain_alias_moves_one_cluster_and_heal_restores_the_mesh_config(
        lab: RunningLab) -> None:
    before = {c: _mesh(lab, c) for c in lab.contexts}
    _switch(lab, "break", "trust-domain-alias")
    for context in lab.contexts:
        mesh = yaml.safe_load(_mesh(lab, context))
        if context == MOVED_CLUSTER:
            assert mesh["trustDomain"] == MOVED_TRUST_DOMAIN
            assert mesh["trustDomainAliases"] == ["cluster.local"]
        else:
            assert mesh["trustDomain"] == "cluster.local"
            assert mesh["trustDomainAliases"] == [MOVED_TRUST_DOMAIN]
        assert mesh["defaultConfig"] == yaml.safe_load(before[context])["defaultConfig"]
    _switch(lab, "heal", "trust-domain-alias")
    assert {c: _mesh(lab, c) for c in lab.contexts} == before


@pytest.mark.lab
def test_a_switch_whose_object_is_missing_says_so_in_one_line(tmp_path: Path) -> None:
    with running_lab(tmp_path) as bare:
        for name in BREAKS:
            proc = lab_command(bare.root, "break", name)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
            assert "Traceback" not in proc.stderr
        for name in BREAKS:  # nothing was changed, so there is nothing to put back
            healed = lab_command(bare.root, "heal", name)
            assert healed.returncode == 0, healed.stdout + healed.stderr
