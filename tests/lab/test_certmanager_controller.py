"""The lab's cert-manager controller, as a real process against a real (lab) API server.

The mesh's own objects (clusters/cert-manager/*.yaml) are applied with the official
client; the controller runs 500x faster than real time (``--lab-time-scale=0.002``),
so a 1h certificate lives 7.2 s (renewBefore 40m: renewed 4.8 s before it expires) and
tls-cert (90 days) about 4.3 h.
"""

from __future__ import annotations

import base64
import datetime
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from meshproof.lab.certmanager.breaks import clear_break, write_break
from tests.support.certmanager import CertManager, running_certmanager

pytestmark = pytest.mark.lab

TIME_SCALE = 0.002
SEVEN_DAYS = 7 * 86400


@pytest.fixture(scope="module")
def cm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CertManager]:
    with running_certmanager(tmp_path_factory.mktemp("certmanager"),
                             time_scale=TIME_SCALE) as running:
        yield running


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == kind), {})


def _ready_tls_cert(cm: CertManager) -> dict[str, Any]:
    def check() -> dict[str, Any]:
        cert = cm.certificate("istio-system", "tls-cert")
        assert _condition(cert, "Ready").get("status") == "True", cert.get("status")
        assert not _condition(cert, "Issuing"), cert["status"]
        return cert
    return cm.wait(check, "tls-cert Ready")


def _when(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def _secret_pem(cm: CertManager, namespace: str, name: str, key: str) -> bytes:
    data = cm.core.read_namespaced_secret(name, namespace).data
    return base64.b64decode(data[key])


def test_both_cluster_issuers_become_ready(cm: CertManager) -> None:
    def check() -> tuple[dict[str, Any], dict[str, Any]]:
        selfsigned = _condition(cm.cluster_issuer("meshproof-selfsigned"), "Ready")
        ca = _condition(cm.cluster_issuer("meshproof-ingress-ca"), "Ready")
        assert selfsigned.get("status") == "True" and ca.get("status") == "True", (selfsigned, ca)
        return selfsigned, ca
    selfsigned, ca = cm.wait(check, "ClusterIssuers Ready")
    assert selfsigned["reason"] == "IsReady"
    assert (ca["reason"], ca["message"]) == ("KeyPairVerified", "Signing CA verified")


def test_tls_cert_secret_is_signed_by_the_ingress_ca(cm: CertManager) -> None:
    _ready_tls_cert(cm)
    secret = cm.core.read_namespaced_secret("tls-cert", "istio-system")
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret.data["tls.crt"]))
    ca_pem = _secret_pem(cm, "cert-manager", "meshproof-ingress-ca", "tls.crt")
    ca = x509.load_pem_x509_certificate(ca_pem)

    leaf.verify_directly_issued_by(ca)
    assert secret.type == "kubernetes.io/tls"
    assert base64.b64decode(secret.data["ca.crt"]) == ca_pem
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["*.example.com", "api.example.com"]
    assert ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == \
        "meshproof ingress CA"
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert secret.metadata.annotations["cert-manager.io/certificate-name"] == "tls-cert"
    assert secret.metadata.annotations["cert-manager.io/issuer-name"] == "meshproof-ingress-ca"
    assert secret.metadata.annotations["cert-manager.io/issuer-kind"] == "ClusterIssuer"
    assert secret.metadata.labels["controller.cert-manager.io/fao"] == "true"


def test_tls_cert_status_reports_lifetime_and_renewal(cm: CertManager) -> None:
    status = _ready_tls_cert(cm)["status"]
    not_before, not_after = _when(status["notBefore"]), _when(status["notAfter"])
    renewal = _when(status["renewalTime"])
    lifetime = (not_after - not_before).total_seconds()
    leaf = x509.load_pem_x509_certificate(_secret_pem(cm, "istio-system", "tls-cert", "tls.crt"))

    assert lifetime == pytest.approx(2160 * 3600 * TIME_SCALE, abs=2)
    # renewBefore 720h: renewal 1/3 of the lifetime before notAfter.
    assert (not_after - renewal).total_seconds() == pytest.approx(720 * 3600 * TIME_SCALE, abs=2)
    assert leaf.not_valid_after_utc == not_after
    assert status["revision"] >= 1
    ready = _condition({"status": status}, "Ready")
    assert (ready["reason"], ready["message"]) == (
        "Ready", "Certificate is up to date and has not expired")
    request = cm.custom.get_namespaced_custom_object(
        "cert-manager.io", "v1", "istio-system", "certificaterequests",
        f"tls-cert-{status['revision']}")
    assert _condition(request, "Approved")["status"] == "True"
    assert _condition(request, "Ready")["reason"] == "Issued"


def test_metrics_have_cert_manager_names_and_labels(cm: CertManager) -> None:
    status = _ready_tls_cert(cm)["status"]
    samples = cm.wait(lambda: cm.metrics(), "metrics served")
    labels = {"name": "tls-cert", "namespace": "istio-system",
              "issuer_name": "meshproof-ingress-ca", "issuer_kind": "ClusterIssuer",
              "issuer_group": "cert-manager.io"}

    def value(name: str, **extra: str) -> float:
        found = [v for n, lab, v in samples if n == name and lab == {**labels, **extra}]
        assert len(found) == 1, (name, extra, samples)
        return found[0]

    assert value("certmanager_certificate_expiration_timestamp_seconds") == \
        _when(status["notAfter"]).timestamp()
    assert value("certmanager_certificate_renewal_timestamp_seconds") == \
        _when(status["renewalTime"]).timestamp()
    assert [value("certmanager_certificate_ready_status", condition=c)
            for c in ("True", "False", "Unknown")] == [1, 0, 0]
    clock = [v for n, _, v in samples if n == "certmanager_clock_time_seconds"]
    assert clock and abs(clock[0] - time.time()) < 5


def test_short_lived_certificate_renews_before_it_expires(cm: CertManager) -> None:
    cm.apply({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
              "metadata": {"name": "short-lived", "namespace": "istio-system"},
              "spec": {"secretName": "short-lived", "dnsNames": ["short.example.com"],
                       "duration": "1h", "renewBefore": "40m",
                       "issuerRef": {"name": "meshproof-ingress-ca", "kind": "ClusterIssuer"}}})

    def issued(revision: int) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            cert = cm.certificate("istio-system", "short-lived")
            assert (cert.get("status") or {}).get("revision", 0) >= revision, cert.get("status")
            return cert
        return cm.wait(check, f"short-lived at revision {revision}")

    first = issued(1)["status"]
    first_key = _secret_pem(cm, "istio-system", "short-lived", "tls.key")
    second = issued(first["revision"] + 1)["status"]

    # Renewed inside the validity of the previous certificate, with a new key.
    assert _when(second["notBefore"]) < _when(first["notAfter"])
    assert _when(second["notAfter"]) > _when(first["notAfter"])
    assert _secret_pem(cm, "istio-system", "short-lived", "tls.key") != first_key
    cm.custom.delete_namespaced_custom_object("cert-manager.io", "v1", "istio-system",
                                              "certificates", "short-lived")


def test_cert_expiring_break_fails_renewal_and_heal_resumes_it(cm: CertManager) -> None:
    before = _ready_tls_cert(cm)["status"]
    write_break(cm.break_dir, certificates=("istio-system/tls-cert",), remaining="1h")

    def renewal_failing() -> dict[str, Any]:
        cert = cm.certificate("istio-system", "tls-cert")
        issuing = _condition(cert, "Issuing")
        assert issuing.get("reason") == "Failed", cert.get("status")
        return cert
    broken = cm.wait(renewal_failing, "tls-cert renewal failing")
    status = broken["status"]
    issuing = _condition(broken, "Issuing")
    left = _when(status["notAfter"]).timestamp() - time.time()

    assert issuing["status"] == "False"
    assert issuing["message"].startswith(
        "The certificate request has failed to complete and will be retried: ")
    assert status["failedIssuanceAttempts"] >= 1 and status["lastFailureTime"]
    assert 0 < left < SEVEN_DAYS
    assert _when(status["renewalTime"]) < datetime.datetime.now(datetime.UTC)
    # As in cert-manager, a certificate whose renewal fails stays Ready until it expires.
    assert _condition(broken, "Ready")["status"] == "True"
    request = cm.custom.get_namespaced_custom_object(
        "cert-manager.io", "v1", "istio-system", "certificaterequests",
        f"tls-cert-{status['revision'] + 1}")
    assert (_condition(request, "Ready")["status"], _condition(request, "Ready")["reason"]) == \
        ("False", "Failed")
    events = cm.core.list_namespaced_event(
        "istio-system", field_selector="involvedObject.name=tls-cert").items
    assert any(e.type == "Warning" and e.reason == "Failed" for e in events)
    expiry = [v for n, lab, v in cm.metrics()
              if n == "certmanager_certificate_expiration_timestamp_seconds"
              and lab["name"] == "tls-cert"]
    assert expiry and expiry[0] - time.time() < SEVEN_DAYS  # the runbook's P2 alert

    clear_break(cm.break_dir)
    healed = _ready_tls_cert(cm)["status"]
    assert healed["revision"] > status["revision"]
    assert _when(healed["notAfter"]) > _when(status["notAfter"])
    assert "lastFailureTime" not in healed and "failedIssuanceAttempts" not in healed
    assert healed["revision"] > before["revision"]


def test_issuing_false_carries_the_certificate_requests_reason(cm: CertManager) -> None:
    """cert-manager's issuing controller fails an issuance with the CertificateRequest's own
    condition (``failIssueCertificate`` in
    ``pkg/controller/certificates/issuing/issuing_controller.go``): the Certificate's
    Issuing=False reason is the request's reason, its message the request's message after
    "The certificate request has failed to complete and will be retried: ", and the Warning
    event has that reason."""
    _ready_tls_cert(cm)
    write_break(cm.break_dir, certificates=("istio-system/tls-cert",), remaining="1h")
    try:
        def failed() -> dict[str, Any]:
            cert = cm.certificate("istio-system", "tls-cert")
            assert _condition(cert, "Issuing").get("status") == "False", cert.get("status")
            return cert
        cert = cm.wait(failed, "tls-cert issuance failed")
        issuing = _condition(cert, "Issuing")
        request = cm.custom.get_namespaced_custom_object(
            "cert-manager.io", "v1", "istio-system", "certificaterequests",
            f"tls-cert-{cert['status']['revision'] + 1}")
        ready = _condition(request, "Ready")
        assert ready["status"] == "False"
        assert issuing["reason"] == ready["reason"]
        assert issuing["message"] == ("The certificate request has failed to complete and "
                                      f"will be retried: {ready['message']}")
        events = cm.core.list_namespaced_event(
            "istio-system", field_selector="involvedObject.name=tls-cert").items
        assert any(e.type == "Warning" and e.reason == issuing["reason"]
                   and e.message == issuing["message"] for e in events)
    finally:
        clear_break(cm.break_dir)
    _ready_tls_cert(cm)


def test_cert_expiring_break_past_expiry_makes_it_not_ready(cm: CertManager) -> None:
    _ready_tls_cert(cm)
    write_break(cm.break_dir, certificates=("istio-system/tls-cert",), remaining="-1m")

    def expired() -> dict[str, Any]:
        cert = cm.certificate("istio-system", "tls-cert")
        ready = _condition(cert, "Ready")
        assert (ready.get("status"), ready.get("reason")) == ("False", "Expired"), cert["status"]
        assert _condition(cert, "Issuing").get("reason") == "Failed", cert["status"]
        return cert
    cm.wait(expired, "tls-cert expired with renewal failing")

    def ready_false_metric() -> None:
        ready = {lab["condition"]: v for n, lab, v in cm.metrics()
                 if n == "certmanager_certificate_ready_status" and lab["name"] == "tls-cert"}
        assert ready == {"True": 0, "False": 1, "Unknown": 0}, ready
    cm.wait(ready_false_metric, "ready_status False for tls-cert")

    clear_break(cm.break_dir)
    _ready_tls_cert(cm)


def test_a_deleted_secret_is_issued_again(cm: CertManager) -> None:
    before = _ready_tls_cert(cm)["status"]
    cm.core.delete_namespaced_secret("tls-cert", "istio-system")

    def reissued() -> None:
        status = cm.certificate("istio-system", "tls-cert")["status"]
        assert status["revision"] > before["revision"], status
        cm.core.read_namespaced_secret("tls-cert", "istio-system")
    cm.wait(reissued, "tls-cert issued again after its Secret was deleted")
    events = cm.core.list_namespaced_event(
        "istio-system", field_selector="involvedObject.name=tls-cert").items
    messages = {(e.reason, e.message) for e in events}
    assert ("Issuing", "Issuing certificate as Secret does not exist") in messages
    assert ("Issuing", "The certificate has been successfully issued") in messages
    assert any(reason == "Requested" for reason, _ in messages)


def test_manual_trigger_renews_as_cmctl_renew_does(cm: CertManager) -> None:
    cert = _ready_tls_cert(cm)
    conditions = [*cert["status"]["conditions"],
                  {"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
                   "message": "Certificate re-issuance manually triggered"}]
    cm.custom.patch_namespaced_custom_object_status(
        "cert-manager.io", "v1", "istio-system", "certificates", "tls-cert",
        {"status": {"conditions": conditions}})
    renewed = _ready_tls_cert(cm)
    assert renewed["status"]["revision"] > cert["status"]["revision"]


def test_a_duration_under_an_hour_is_refused_as_the_webhook_would(cm: CertManager) -> None:
    cm.apply({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
              "metadata": {"name": "too-short", "namespace": "istio-system"},
              "spec": {"secretName": "too-short", "dnsNames": ["x.example.com"],
                       "duration": "30m",
                       "issuerRef": {"name": "meshproof-ingress-ca", "kind": "ClusterIssuer"}}})

    def refused() -> dict[str, Any]:
        ready = _condition(cm.certificate("istio-system", "too-short"), "Ready")
        assert ready.get("reason") == "BadConfig", ready
        return ready
    ready = cm.wait(refused, "too-short refused")
    assert ready["status"] == "False"
    assert "certificate duration must be greater than 1h0m0s" in ready["message"]


def test_controller_is_still_running(cm: CertManager) -> None:
    assert cm.process.poll() is None, cm.log.read_text()[-2000:]


def test_kubeconfig_flag_points_the_controller_at_another_api_server(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_certmanager(tmp_path_factory.mktemp("certmanager-kubeconfig"),
                             time_scale=TIME_SCALE, in_cluster=False) as other:
        _ready_tls_cert(other)
        assert _condition(other.cluster_issuer("meshproof-ingress-ca"), "Ready")["status"] == \
            "True"
