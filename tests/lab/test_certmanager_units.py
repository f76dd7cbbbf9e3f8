"""The lab cert-manager's pure parts: install objects, durations, signing, metrics, break file."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from meshproof import pki
from meshproof.errors import ConfigError
from meshproof.lab.certmanager import breaks, install, signing
from meshproof.lab.certmanager.durations import (
    format_duration,
    parse_duration,
    renewal_time,
)
from meshproof.lab.certmanager.kubeapi import endpoint_from_kubeconfig, in_cluster_endpoint
from meshproof.lab.certmanager.metrics import ControllerMetrics
from meshproof.lab.images import load_registrations, lookup
from tests.support.certmanager import metric_samples

H = datetime.timedelta(hours=1)


def _by_kind(kind: str) -> list[dict]:
    return [o for o in install.render() if o["kind"] == kind]


def test_render_declares_the_four_crds_with_their_short_names() -> None:
    crds = {c["metadata"]["name"]: c["spec"] for c in _by_kind("CustomResourceDefinition")}
    assert {name: (s["names"]["shortNames"], s["scope"]) for name, s in crds.items()} == {
        "certificates.cert-manager.io": (["cert", "certs"], "Namespaced"),
        "certificaterequests.cert-manager.io": (["cr", "crs"], "Namespaced"),
        "issuers.cert-manager.io": (["iss"], "Namespaced"),
        "clusterissuers.cert-manager.io": (["ciss"], "Cluster"),
    }
    for spec in crds.values():
        assert spec["group"] == "cert-manager.io"
        assert spec["names"]["categories"] == ["cert-manager"]
        assert [(v["name"], v["subresources"]) for v in spec["versions"]] == [("v1", {"status": {}})]


def test_render_controller_deployment_and_metrics_service() -> None:
    [deploy] = _by_kind("Deployment")
    template = deploy["spec"]["template"]
    [container] = template["spec"]["containers"]
    assert (deploy["metadata"]["name"], deploy["metadata"]["namespace"]) == \
        ("cert-manager", "cert-manager")
    assert container["image"] == "quay.io/jetstack/cert-manager-controller:v1.21.1"
    for key, value in {"app": "cert-manager", "app.kubernetes.io/name": "cert-manager",
                       "app.kubernetes.io/component": "controller"}.items():
        assert template["metadata"]["labels"][key] == value
        assert deploy["metadata"]["labels"][key] == value
    assert template["metadata"]["annotations"] == {
        "prometheus.io/path": "/metrics", "prometheus.io/scrape": "true",
        "prometheus.io/port": "9402"}
    assert deploy["spec"]["selector"]["matchLabels"].items() <= \
        template["metadata"]["labels"].items()
    [svc] = _by_kind("Service")
    assert svc["spec"]["ports"] == [{"name": "tcp-prometheus-servicemonitor", "port": 9402,
                                     "protocol": "TCP", "targetPort": "http-metrics"}]
    assert svc["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == \
        {"http-metrics": 9402, "http-healthz": 9403}
    assert [n["metadata"]["name"] for n in _by_kind("Namespace")] == ["cert-manager"]
    assert template["spec"]["serviceAccountName"] == \
        _by_kind("ServiceAccount")[0]["metadata"]["name"]


def test_the_controller_image_is_registered() -> None:
    load_registrations()
    program = lookup(install.CONTROLLER_IMAGE)
    assert program is not None and program.entry == "meshproof.lab.certmanager.program:run"


@pytest.mark.parametrize(("text", "seconds"), [
    ("2160h", 2160 * 3600), ("1h30m", 5400), ("90m", 5400), ("0.5h", 1800), ("30s", 30),
    ("-1h", -3600), ("0", 0), ("1h0m0s", 3600), ("500ms", 0.5)])
def test_go_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "1d", "h", "1h 30m", "3"])
def test_bad_durations_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="cannot parse duration"):
        parse_duration(text)


def test_durations_format_as_go_prints_them() -> None:
    assert [format_duration(d) for d in (2160 * H, 5 * H / 60, datetime.timedelta(0), -H)] == \
        ["2160h0m0s", "5m0s", "0s", "-1h0m0s"]


def test_renewal_time_follows_renew_before_or_two_thirds_of_the_lifetime() -> None:
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    end = start + 2160 * H
    assert renewal_time(start, end, 720 * H) == end - 720 * H
    assert renewal_time(start, end, None) == start + 1440 * H
    # A renewBefore not shorter than the lifetime falls back to 1/3 of it.
    assert renewal_time(start, end, 3000 * H) == start + 1440 * H


def _issuers() -> tuple[dict, dict]:
    selfsigned = {"metadata": {"name": "ss"}, "spec": {"selfSigned": {}}}
    ca = {"metadata": {"name": "ca"}, "spec": {"ca": {"secretName": "ca"}}}
    return selfsigned, ca


def test_a_ca_issuer_caps_notafter_at_its_own_expiry() -> None:
    _, ca_issuer = _issuers()
    ca = pki.make_root_ca(common_name="short CA", valid_days=1)
    cert = {"metadata": {"name": "c", "namespace": "n"},
            "spec": {"commonName": "a.example.com", "dnsNames": ["b.example.com"]}}
    now = datetime.datetime.now(datetime.UTC)
    leaf = signing.sign(cert, ca_issuer, ca=ca, duration=2160 * H, not_before=now)
    assert leaf.cert.not_valid_after_utc == ca.cert.not_valid_after_utc
    assert signing.names_of(cert) == ["a.example.com", "b.example.com"]
    secret = signing.secret_body({**cert, "spec": {**cert["spec"], "secretName": "c"}}, leaf,
                                 signing.IssuerRef("ca", "ClusterIssuer", "cert-manager.io"), None)
    assert secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["ca.crt"]) == ca.cert_pem()
    assert signing.read_secret_pair(secret, "test secret").cert == leaf.cert


def test_signing_errors_name_what_is_not_emulated() -> None:
    _, ca_issuer = _issuers()
    ca = pki.make_root_ca(valid_days=1)
    now = datetime.datetime.now(datetime.UTC)
    with pytest.raises(signing.SigningError, match="isCA"):
        signing.sign({"metadata": {"name": "x", "namespace": "n"},
                      "spec": {"isCA": True, "commonName": "x"}}, ca_issuer, ca=ca,
                     duration=H, not_before=now)
    with pytest.raises(signing.SigningError, match="'acme' is not emulated"):
        signing.sign({"metadata": {"name": "x", "namespace": "n"}, "spec": {"commonName": "x"}},
                     {"spec": {"acme": {}}}, ca=None, duration=H, not_before=now)


def test_load_ca_refuses_a_leaf() -> None:
    ca = pki.make_root_ca(valid_days=1)
    leaf = pki.issue_server_cert(ca, ["x.example.com"], ttl=H)
    secret = {"data": {k: base64.b64encode(v.encode()).decode()
                       for k, v in pki.tls_secret_data(leaf).items()}}
    with pytest.raises(ConfigError, match="does not hold a CA certificate"):
        signing.load_ca(secret, "secret ns/leaf")


def test_metrics_render_three_ready_series_and_zero_before_issuance() -> None:
    certs = [
        {"metadata": {"name": "a", "namespace": "n"},
         "spec": {"issuerRef": {"name": "i", "kind": "Issuer", "group": "cert-manager.io"}},
         "status": {"notAfter": "2026-01-01T00:00:00Z", "renewalTime": "2025-12-01T00:00:00Z",
                    "conditions": [{"type": "Ready", "status": "False"}]}},
        {"metadata": {"name": "b", "namespace": "n"}, "spec": {"issuerRef": {"name": "i"}}},
    ]
    samples = metric_samples(ControllerMetrics(lambda: certs).exposition())
    by = {(n, lab.get("name"), lab.get("condition")): v for n, lab, v in samples}
    assert by[("certmanager_certificate_expiration_timestamp_seconds", "a", None)] == 1767225600
    assert by[("certmanager_certificate_expiration_timestamp_seconds", "b", None)] == 0
    assert [by[("certmanager_certificate_ready_status", "a", c)]
            for c in ("True", "False", "Unknown")] == [0, 1, 0]
    assert [by[("certmanager_certificate_ready_status", "b", c)]
            for c in ("True", "False", "Unknown")] == [0, 0, 1]
    labels = next(lab for n, lab, _ in samples if n.endswith("expiration_timestamp_seconds"))
    assert set(labels) == {"name", "namespace", "issuer_name", "issuer_kind", "issuer_group"}


def test_break_file_round_trip_and_lab_switch(tmp_path: Path) -> None:
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(
        {"contexts": [{"name": "aws-eks"}, {"name": "gcp-gke"}]}))
    breaks.apply_cert_expiring(tmp_path)
    for cluster in ("aws-eks", "gcp-gke"):
        state = breaks.read_break(breaks.break_dir(tmp_path, cluster))
        assert state == breaks.CertExpiring(("istio-system/tls-cert",), 120 * H)
    pod_dir = tmp_path / "pods" / "gcp-gke" / "cert-manager" / "cert-manager-abc"
    pod_dir.mkdir(parents=True)
    assert breaks.pod_break_dir(pod_dir, "gcp-gke", {}) == tmp_path / "breaks" / "gcp-gke"
    breaks.revert_cert_expiring(tmp_path)
    assert breaks.read_break(breaks.break_dir(tmp_path, "aws-eks")) is None
    with pytest.raises(ConfigError):
        breaks.write_break(tmp_path, remaining="5 days")


def test_endpoints_from_kubeconfig_and_service_account(tmp_path: Path) -> None:
    ca = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "current-context": "gcp-gke",
        "clusters": [{"name": "gcp-gke", "cluster": {
            "server": "https://127.0.0.1:6443",
            "certificate-authority-data": base64.b64encode(ca.encode()).decode()}}],
        "users": [{"name": "u", "user": {"token": "t0k"}}],
        "contexts": [{"name": "gcp-gke", "context": {"cluster": "gcp-gke", "user": "u"}}]}))
    assert endpoint_from_kubeconfig(kubeconfig) == \
        type(endpoint_from_kubeconfig(kubeconfig))("https://127.0.0.1:6443", "t0k", ca)
    (tmp_path / "token").write_text("sa-token\n")
    endpoint = in_cluster_endpoint({"KUBERNETES_SERVICE_HOST": "127.11.0.1",
                                    "KUBERNETES_SERVICE_PORT": "443"}, tmp_path)
    assert (endpoint.server, endpoint.token) == ("https://127.11.0.1:443", "sa-token")
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_endpoint({}, tmp_path)


def test_the_switch_is_registered_with_the_lab_cli(tmp_path: Path) -> None:
    from meshproof.lab import cli
    from meshproof.lab.certmanager import switch  # noqa: F401  (registers on import)
    from meshproof.lab.state import LabPaths

    (tmp_path / "kubeconfig").write_text(yaml.safe_dump({"contexts": [{"name": "aws-eks"}]}))
    registered = cli.switches()["cert-expiring"]
    registered.apply(LabPaths(tmp_path))
    assert breaks.read_break(breaks.break_dir(tmp_path, "aws-eks")) is not None
    registered.revert(LabPaths(tmp_path))
    assert breaks.read_break(breaks.break_dir(tmp_path, "aws-eks")) is None


@pytest.mark.parametrize("obj", install.render(),
                         ids=lambda o: f"{o['kind']}/{o['metadata']['name']}")
def test_rendered_objects_validate_against_the_kubernetes_schema(obj: dict) -> None:
    # The version kind installs (clusters/versions.env KIND_NODE_IMAGE v1.36.1).
    kubernetes_validate.validate(obj, "1.36.0", strict=True)
