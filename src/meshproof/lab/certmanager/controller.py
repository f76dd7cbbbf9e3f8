"""The cert-manager controller loop: Issuers, ClusterIssuers, Certificates, CertificateRequests.

Level-triggered: every change seen by a watch (and every renewal or retry time that
comes due) runs one pass over all objects. Behaviour follows cert-manager
``pkg/controller/certificates/{trigger,readiness,issuing,requestmanager}`` and
``pkg/controller/issuers``:

- a SelfSigned issuer is Ready (IsReady); a CA issuer is Ready (KeyPairVerified,
  "Signing CA verified") once its secret — a ClusterIssuer's in the cluster resource
  namespace — holds a CA pair, else Ready=False (ErrGetKeyPair / ErrInvalidKeyPair);
- a Certificate is issued when its Secret is missing, incomplete, invalid, from
  another issuer, for other names, or its renewal time has passed. Issuing sets
  Issuing=True, creates CertificateRequest ``<name>-<revision>``, then writes the
  Secret and status (notBefore, notAfter, renewalTime, revision) and removes Issuing;
  the CertificateRequest decides how it ends (:mod:`.issuing`): a failure sets
  Issuing=False with the request's reason (``Failed``, ``InvalidCertificate``, a denial's),
  lastFailureTime and failedIssuanceAttempts and is retried after 1h·2^(n−1) (at most 32h);
- Ready is True ("Certificate is up to date and has not expired") unless the Secret
  is unusable or the certificate has expired: a certificate whose renewals fail
  stays Ready until it expires, as in cert-manager (its readiness policy chain has no
  "nearing expiry" check).

Every duration (spec, defaults, minimums, retry backoff) is multiplied by the
lab time scale (``Settings.time_scale``), so tests can watch renewals in seconds.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from meshproof import pki
from meshproof.errors import ConfigError
from meshproof.lab.certmanager import issuing as issuance
from meshproof.lab.certmanager import signing
from meshproof.lab.certmanager.breaks import CertExpiring, read_break
from meshproof.lab.certmanager.conditions import (
    condition,
    same_conditions,
    set_condition,
    without_condition,
)
from meshproof.lab.certmanager.durations import (
    DEFAULT_DURATION,
    MIN_DURATION,
    MIN_RENEW_BEFORE,
    format_duration,
    format_time,
    parse_duration,
    renewal_time,
)
from meshproof.lab.certmanager.kubeapi import ApiClient, ApiError, Informer
from meshproof.lab.certmanager.metrics import ControllerMetrics

__all__ = ["Controller", "Settings"]

Obj = dict[str, Any]
Key = tuple[str, str]
_API = "/apis/cert-manager.io/v1"
_PLURALS = {"Certificate": "certificates", "CertificateRequest": "certificaterequests",
            "Issuer": "issuers", "ClusterIssuer": "clusterissuers"}
_READY_MESSAGE = "Certificate is up to date and has not expired"
_MAX_WAIT = 1.0  # seconds between passes at most: the break flag file is polled, not watched
_REQUESTER = "system:serviceaccount:cert-manager:cert-manager"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class Settings:
    """How the controller runs."""

    cluster_resource_namespace: str = "cert-manager"
    """Where ClusterIssuers find their secrets (``--cluster-resource-namespace``)."""
    time_scale: float = 1.0
    """Multiplies every duration the controller applies (lab only; 1 = real time)."""
    break_dir: Path | None = None
    """Where the ``cert-expiring`` flag file is looked for (None: never broken)."""
    instance: str = "cert-manager"
    """The pod name, reported as the events' reportingInstance."""
    now: Callable[[], datetime.datetime] = field(default=_utcnow)


def _path(kind: str, namespace: str, name: str = "", sub: str = "") -> str:
    base = "/api/v1" if kind in ("Secret", "Event") else _API
    plural = {"Secret": "secrets", "Event": "events"}.get(kind) or _PLURALS[kind]
    out = base + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return out + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _rfc1123(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")


class Controller:
    """One cluster's cert-manager controller over an :class:`ApiClient`."""

    def __init__(self, client: ApiClient, settings: Settings, *,
                 log: Callable[[str], None]) -> None:
        self.client = client
        self.settings = settings
        self.log = log
        self.wake = asyncio.Event()
        self.certificates = self._informer("certificates")
        self.issuers = self._informer("issuers")
        self.cluster_issuers = self._informer("clusterissuers")
        self.requests = self._informer("certificaterequests")
        self.secrets = Informer(client, "/api/v1/secrets", self.wake.set, log=log)
        self.metrics = ControllerMetrics(self.certificates.items)
        self._break: CertExpiring | None = None
        self._backdated: set[Key] = set()
        self._failed_in_break: set[Key] = set()
        self._retry_now: set[Key] = set()
        self._due: datetime.datetime | None = None

    def _informer(self, plural: str) -> Informer:
        return Informer(self.client, f"{_API}/{plural}", self.wake.set, log=self.log)

    @property
    def _informers(self) -> list[Informer]:
        return [self.certificates, self.issuers, self.cluster_issuers, self.requests,
                self.secrets]

    def _scaled(self, value: datetime.timedelta) -> datetime.timedelta:
        return value * self.settings.time_scale

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile until ``stop`` is set."""
        for informer in self._informers:
            informer.start()
        try:
            while not stop.is_set():
                wait = _MAX_WAIT
                if self._due is not None:
                    wait = min(wait, max(0.05, (self._due - self.settings.now())
                                         .total_seconds()))
                waiters = [asyncio.ensure_future(self.wake.wait()),
                           asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
                self.wake.clear()
                if stop.is_set() or not all(i.synced.is_set() for i in self._informers):
                    continue
                try:
                    await self.reconcile()
                except ApiError as exc:  # the next pass retries; the cache catches up meanwhile
                    self.log(f"reconcile: {exc}")
        finally:
            for informer in self._informers:
                await informer.stop()

    async def reconcile(self) -> None:
        """One pass over every issuer and certificate."""
        now = self.settings.now()
        self._due = None
        self._read_break()
        for kind, informer in (("Issuer", self.issuers), ("ClusterIssuer", self.cluster_issuers)):
            for issuer in informer.items():
                await self._reconcile_issuer(kind, issuer, now)
        for cert in self.certificates.items():
            if not (cert.get("metadata") or {}).get("deletionTimestamp"):
                await self._reconcile_certificate(cert, now)

    def _due_at(self, when: datetime.datetime) -> None:
        if self._due is None or when < self._due:
            self._due = when

    def _read_break(self) -> None:
        try:
            current = read_break(self.settings.break_dir) if self.settings.break_dir else None
        except ConfigError as exc:
            self.log(f"break flag: {exc}; keeping the previous state")
            return
        if current is None and self._break is not None:
            self.log("cert-expiring healed: retrying failed issuances now")
            # Also what failed before a restart of this process, which it cannot remember.
            failed = {_key(c) for c in self.certificates.items()
                      if (c.get("status") or {}).get("lastFailureTime")
                      and (condition(c["status"], "Issuing") or {}).get("status") == "False"}
            self._retry_now |= self._failed_in_break | failed
            self._failed_in_break.clear()
        if current != self._break:
            self._backdated.clear()
            if current is not None:
                self.log(f"cert-expiring broken: {', '.join(current.certificates)} left "
                         f"{format_duration(current.remaining)} from expiry; CA signing fails")
        self._break = current

    # -- writes ---------------------------------------------------------------------------

    async def _patch_status(self, kind: str, obj: Obj, status: Obj) -> Obj:
        ns, name = _key(obj)
        informer = {"Certificate": self.certificates, "Issuer": self.issuers,
                    "ClusterIssuer": self.cluster_issuers,
                    "CertificateRequest": self.requests}[kind]
        updated = await self.client.merge_patch(_path(kind, ns, name, "status"),
                                                {"status": status})
        informer.put(updated)
        return updated

    async def _event(self, obj: Obj, kind: str, type_: str, reason: str, message: str,
                     component: str) -> None:
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        stamp = format_time(self.settings.now())
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name')}.{secrets.token_hex(8)}", "namespace": ns},
            "involvedObject": {"apiVersion": "cert-manager.io/v1", "kind": kind,
                               "name": meta.get("name"), "namespace": meta.get("namespace", ""),
                               "uid": meta.get("uid", ""),
                               "resourceVersion": meta.get("resourceVersion", "")},
            "reason": reason, "message": message, "type": type_,
            "source": {"component": component},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": component, "reportingInstance": self.settings.instance,
        }
        try:
            await self.client.create(_path("Event", ns), body)
        except ApiError as exc:  # an event lost is not worth a failed reconcile
            self.log(f"event {reason} for {kind} {ns}/{meta.get('name')}: {exc}")

    # -- issuers --------------------------------------------------------------------------

    def _issuer_namespace(self, kind: str, issuer: Obj) -> str:
        if kind == "ClusterIssuer":
            return self.settings.cluster_resource_namespace
        return str(issuer["metadata"].get("namespace", ""))

    def _ca_pair(self, kind: str, issuer: Obj) -> tuple[pki.CertKey | None, str, str]:
        """(CA pair or None, failure reason, failure message) of a CA issuer."""
        ns = self._issuer_namespace(kind, issuer)
        name = str(((issuer.get("spec") or {}).get("ca") or {}).get("secretName", ""))
        secret = self.secrets.get(ns, name)
        if secret is None:
            return None, "ErrGetKeyPair", (f"Error getting keypair for CA issuer: "
                                           f'secrets "{name}" not found')
        try:
            return signing.load_ca(secret, f"secret {ns}/{name}"), "", ""
        except ConfigError as exc:
            return None, "ErrInvalidKeyPair", f"Error getting keypair for CA issuer: {exc}"

    async def _reconcile_issuer(self, kind: str, issuer: Obj, now: datetime.datetime) -> None:
        self.metrics.synced("clusterissuers" if kind == "ClusterIssuer" else "issuers")
        itype = signing.issuer_type(issuer)
        if itype == "selfSigned":
            ready = ("True", "IsReady", "")
        elif itype == "ca":
            ca, reason, message = self._ca_pair(kind, issuer)
            ready = ("True", "KeyPairVerified", "Signing CA verified") if ca else \
                ("False", reason, message)
        else:
            ready = ("False", "ErrInitIssuer", f"issuer type {itype} is not emulated by the lab")
        status = issuer.get("status") or {}
        old = status.get("conditions") or []
        new = set_condition(old, "Ready", *ready,
                            generation=int(issuer["metadata"].get("generation", 1)), now=now)
        if same_conditions(old, new):
            return
        await self._patch_status(kind, issuer, {"conditions": new})
        previous = condition(status, "Ready") or {}
        if previous.get("status") != ready[0] or previous.get("reason") != ready[1]:
            await self._event(issuer, kind, "Normal" if ready[0] == "True" else "Warning",
                              ready[1], ready[2] or "Issuer is ready", "cert-manager-issuers")

    def _issuer_for(self, ref: signing.IssuerRef, namespace: str) -> Obj | None:
        if ref.kind == "ClusterIssuer":
            return self.cluster_issuers.get("", ref.name)
        return self.issuers.get(namespace, ref.name)

    # -- certificates ---------------------------------------------------------------------

    def _lifetime(self, spec: Obj) -> tuple[datetime.timedelta, datetime.timedelta | None, str]:
        """(duration, renewBefore or None, webhook-style problem or "") before scaling."""
        try:
            duration = parse_duration(spec["duration"]) if spec.get("duration") \
                else DEFAULT_DURATION
            renew: datetime.timedelta | None = None
            if spec.get("renewBefore"):
                renew = parse_duration(spec["renewBefore"])
            elif spec.get("renewBeforePercentage") is not None:
                renew = duration * float(spec["renewBeforePercentage"]) / 100
        except (ConfigError, ValueError) as exc:
            return DEFAULT_DURATION, None, str(exc)
        if duration < MIN_DURATION:
            return duration, renew, (f'spec.duration: Invalid value: "{format_duration(duration)}"'
                                     f": certificate duration must be greater than "
                                     f"{format_duration(MIN_DURATION)}")
        if renew is not None and renew < MIN_RENEW_BEFORE:
            return duration, renew, (f'spec.renewBefore: Invalid value: '
                                     f'"{format_duration(renew)}": certificate renewBefore must '
                                     f"be greater than {format_duration(MIN_RENEW_BEFORE)}")
        if renew is not None and renew >= duration:
            return duration, renew, (f'spec.renewBefore: Invalid value: '
                                     f'"{format_duration(renew)}": certificate duration '
                                     f"{format_duration(duration)} must be greater than "
                                     f"renewBefore {format_duration(renew)}")
        return duration, renew, ""

    def _current(self, cert: Obj, secret: Obj | None, ref: signing.IssuerRef
                 ) -> tuple[pki.CertKey | None, tuple[str, str] | None]:
        """The certificate in the Secret, and why it needs (re)issuing if it is unusable."""
        if secret is None:
            return None, ("DoesNotExist", "Issuing certificate as Secret does not exist")
        data = secret.get("data") or {}
        if not data.get("tls.crt") or not data.get("tls.key"):
            return None, ("MissingData", "Issuing certificate as Secret does not contain a "
                          "certificate" if not data.get("tls.crt") else
                          "Issuing certificate as Secret does not contain a private key")
        ns, name = _key(secret)
        try:
            ck = signing.read_secret_pair(secret, f"secret {ns}/{name}")
        except ConfigError as exc:
            return None, ("InvalidData", (f"Issuing certificate as Secret contains invalid "
                          f"data: {exc}"))
        annotations = (secret.get("metadata") or {}).get("annotations") or {}
        issued_by = (annotations.get("cert-manager.io/issuer-name"),
                     annotations.get("cert-manager.io/issuer-kind"),
                     annotations.get("cert-manager.io/issuer-group"))
        if issued_by[0] and issued_by != (ref.name, ref.kind, ref.group):
            return ck, ("IncorrectIssuer", (f"Issuing certificate as Secret was previously "
                        f"issued by {issued_by[1]}.{issued_by[2]}/{issued_by[0]}"))
        if not (cert.get("spec") or {}).get("isCA"):
            try:
                san = ck.cert.extensions.get_extension_for_class(
                    x509.SubjectAlternativeName).value
                held = set(san.get_values_for_type(x509.DNSName))
            except x509.ExtensionNotFound:
                held = set()
            if held != set(signing.names_of(cert)):
                return ck, ("RequestChanged", ("Fields on existing CertificateRequest resource "
                            "not up to date: [spec.dnsNames]"))
        return ck, None

    async def _reconcile_certificate(self, cert: Obj, now: datetime.datetime) -> None:
        self.metrics.synced("certificates-readiness")
        key = _key(cert)
        ns, _name = key
        spec, status = cert.get("spec") or {}, cert.get("status") or {}
        ref = signing.IssuerRef.of(cert)
        if ref.group != signing.GROUP:
            return  # an external issuer's certificate: not this controller's
        generation = int(cert["metadata"].get("generation", 1))
        duration, renew_before, problem = self._lifetime(spec)
        conditions = status.get("conditions") or []
        if problem:
            new = set_condition(conditions, "Ready", "False", "BadConfig", problem,
                                generation=generation, now=now)
            if not same_conditions(conditions, new):
                await self._patch_status("Certificate", cert, {"conditions": new})
                await self._event(cert, "Certificate", "Warning", "BadConfig", problem,
                                  "cert-manager-certificates-trigger")
            return
        duration = self._scaled(duration)
        renew_before = self._scaled(renew_before) if renew_before is not None else None
        secret = self.secrets.get(ns, str(spec.get("secretName", "")))
        ck, violation = self._current(cert, secret, ref)

        desired: Obj = {}
        trigger = violation
        if ck is not None:
            nb, na = ck.cert.not_valid_before_utc, ck.cert.not_valid_after_utc
            renew_at = renewal_time(nb, na, renew_before)
            desired.update(notBefore=format_time(nb), notAfter=format_time(na),
                           renewalTime=format_time(renew_at))
            self._due_at(renew_at)
            self._due_at(na)
            if trigger is None and now >= renew_at:
                trigger = ("Renewing", (f"Renewing certificate as renewal was scheduled at "
                           f"{format_time(renew_at)}"))
        if violation is not None:
            ready = ("False", *violation)
        elif ck is not None and now >= ck.cert.not_valid_after_utc:
            ready = ("False", "Expired",
                     f"Certificate expired on {_rfc1123(ck.cert.not_valid_after_utc)}")
        else:
            ready = ("True", "Ready", _READY_MESSAGE)
        issuing = condition(status, "Issuing")
        if trigger is None and issuing and issuing.get("status") == "True":
            # Issuance asked for by someone else (`cmctl renew`) or interrupted by a restart.
            trigger = (str(issuing.get("reason", "ManuallyTriggered")),
                       str(issuing.get("message", "")))

        new = set_condition(conditions, "Ready", *ready, generation=generation, now=now)
        changed = {k: v for k, v in desired.items() if status.get(k) != v}
        if changed or not same_conditions(conditions, new):
            # Readiness is kept current whether or not an issuance follows.
            cert = await self._patch_status("Certificate", cert, {**changed, "conditions": new})
            status = cert.get("status") or {}

        backdate = self._wants_backdate(key, ck, now)
        if trigger is not None and not backdate and key not in self._retry_now \
                and status.get("lastFailureTime"):
            attempts = int(status.get("failedIssuanceAttempts") or 1)
            delay = self._scaled(datetime.timedelta(hours=min(2 ** (attempts - 1), 32)))
            retry_at = datetime.datetime.fromisoformat(
                str(status["lastFailureTime"])) + delay
            if now < retry_at:
                self._due_at(retry_at)
                trigger = None
        if backdate:
            self._backdated.add(key)
            # The break's stand-in for the last renewal that worked, weeks ago.
            await self._issue(cert, ref, ("Renewing", "Renewing certificate as renewal was "
                                          "scheduled at " + format_time(now)),
                              now, duration, renew_before, backdate=True)
            return
        if trigger is not None:
            await self._issue(cert, ref, trigger, now, duration, renew_before, backdate=False)

    def _wants_backdate(self, key: Key, ck: pki.CertKey | None, now: datetime.datetime) -> bool:
        """Whether the active break still has to leave this certificate close to expiry."""
        brk = self._break
        if brk is None or ck is None or key in self._backdated:
            return False
        if f"{key[0]}/{key[1]}" not in brk.certificates:
            return False
        # Already within the break's remaining lifetime (e.g. after a controller restart).
        return ck.cert.not_valid_after_utc - now > brk.remaining + datetime.timedelta(minutes=1)

    async def _issue(self, cert: Obj, ref: signing.IssuerRef, trigger: tuple[str, str],
                     now: datetime.datetime, duration: datetime.timedelta,
                     renew_before: datetime.timedelta | None, *, backdate: bool) -> None:
        key = _key(cert)
        ns, name = key
        status = cert.get("status") or {}
        generation = int(cert["metadata"].get("generation", 1))
        conditions = status.get("conditions") or []
        issuing = condition(status, "Issuing") or {}
        self.metrics.synced("certificates-issuing")
        if issuing.get("status") != "True":
            conditions = set_condition(conditions, "Issuing", "True", *trigger,
                                       generation=generation, now=now)
            cert = await self._patch_status("Certificate", cert, {"conditions": conditions})
            await self._event(cert, "Certificate", "Normal", "Issuing", trigger[1],
                              "cert-manager-certificates-trigger")
        issuer = self._issuer_for(ref, ns)
        ready = condition((issuer or {}).get("status") or {}, "Ready") or {}
        if issuer is None or ready.get("status") != "True":
            # As a CertificateRequest would stay Pending: wait for the issuer to become Ready.
            return

        failure = ""
        ck: pki.CertKey | None = None
        ca: pki.CertKey | None = None
        if signing.issuer_type(issuer) == "ca":
            ca, _, message = self._ca_pair(ref.kind, issuer)
            secret_ns = self._issuer_namespace(ref.kind, issuer)
            secret_name = (issuer["spec"]["ca"] or {}).get("secretName", "")
            if ca is None:
                # The CA issuer leaves its request Pending (SecretMissing / SecretInvalidData,
                # pkg/controller/certificaterequests/ca/ca.go): the issuance waits, not fails.
                self.log(f"Certificate {ns}/{name}: waiting for the signing CA keypair in "
                         f"secret {secret_ns}/{secret_name}: {message}")
                return
            if self._break is not None and not backdate:
                failure = (f"Error signing certificate: signing CA key in secret "
                           f"{secret_ns}/{secret_name} is unusable")
        start = now
        if backdate and self._break is not None:
            start = min(now, now + self._break.remaining - duration)
        if not failure:
            try:
                ck = signing.sign(cert, issuer, ca=ca, duration=duration, not_before=start)
            except signing.SigningError as exc:
                failure = f"Error signing certificate: {exc}"

        revision = int(status.get("revision") or 0) + 1
        request_name = f"{name}-{revision}"
        key_secret = f"{name}-{secrets.token_hex(3)[:5]}"
        await self._event(cert, "Certificate", "Normal", "Generated",
                          f'Stored new private key in temporary Secret resource "{key_secret}"',
                          "cert-manager-certificates-key-manager")
        request = await self._write_request(cert, ref, request_name, revision, ck, failure, now,
                                            issuer_type=signing.issuer_type(issuer),
                                            key_secret=key_secret)
        await self._event(cert, "Certificate", "Normal", "Requested",
                          f'Created new CertificateRequest resource "{request_name}"',
                          "cert-manager-certificates-request-manager")
        # The break's stand-in is judged as of the moment it pretends to have been issued.
        result = issuance.outcome(request, start if backdate else now)
        if result.state == "waiting":
            return
        if result.state == "failed" or ck is None:
            attempts = int(status.get("failedIssuanceAttempts") or 0) + 1
            message = issuance.issuing_message(result.message)
            conditions = set_condition(conditions, "Issuing", "False", result.reason, message,
                                       generation=generation, now=now)
            await self._patch_status("Certificate", cert, {
                "conditions": conditions, "lastFailureTime": format_time(now),
                "failedIssuanceAttempts": attempts})
            await self._event(cert, "Certificate", "Warning", result.reason, message,
                              "cert-manager-certificates-issuing")
            if self._break is not None:
                self._failed_in_break.add(key)
            self._retry_now.discard(key)
            self.log(f"Certificate {ns}/{name}: {message}")
            return

        spec = cert.get("spec") or {}
        existing = self.secrets.get(ns, str(spec["secretName"]))
        body = signing.secret_body(cert, ck, ref, existing)
        if existing is None:
            written = await self.client.create(_path("Secret", ns), body)
        else:
            written = await self.client.merge_patch(
                _path("Secret", ns, str(spec["secretName"])),
                {"metadata": {k: body["metadata"][k] for k in ("annotations", "labels")},
                 "data": body["data"]})
        self.secrets.put(written)
        nb, na = ck.cert.not_valid_before_utc, ck.cert.not_valid_after_utc
        renew_at = renewal_time(nb, na, renew_before)
        expired = now >= na
        conditions = without_condition(conditions, "Issuing")
        conditions = set_condition(
            conditions, "Ready", *(("False", "Expired", f"Certificate expired on {_rfc1123(na)}")
                                   if expired else ("True", "Ready", _READY_MESSAGE)),
            generation=generation, now=now)
        await self._patch_status("Certificate", cert, {
            "conditions": conditions, "notBefore": format_time(nb), "notAfter": format_time(na),
            "renewalTime": format_time(renew_at), "revision": revision,
            "lastFailureTime": None, "failedIssuanceAttempts": None})
        await self._event(cert, "Certificate", "Normal", "Issuing",
                          "The certificate has been successfully issued",
                          "cert-manager-certificates-issuing")
        self._retry_now.discard(key)
        self._due_at(renew_at)
        self.log(f"Certificate {ns}/{name}: issued revision {revision}, notAfter "
                 f"{format_time(na)}, renewal {format_time(renew_at)}")

    async def _write_request(self, cert: Obj, ref: signing.IssuerRef, request_name: str,
                             revision: int, ck: pki.CertKey | None, failure: str,
                             now: datetime.datetime, *, issuer_type: str,
                             key_secret: str) -> Obj:
        """CertificateRequest ``<name>-<revision>`` as its issuer leaves it; older ones of the
        certificate go (revisionHistoryLimit 1)."""
        ns, name = _key(cert)
        for old in self.requests.items():
            meta = old.get("metadata") or {}
            if meta.get("namespace") == ns and meta.get("name") != request_name and \
                    (meta.get("annotations") or {}).get("cert-manager.io/certificate-name") == name:
                await self.client.delete(_path("CertificateRequest", ns, meta["name"]))
        spec = cert.get("spec") or {}
        names = signing.names_of(cert)
        csr = signing.csr_pem(names, ck.key if ck is not None else None)
        body = {
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {
                "name": request_name, "namespace": ns,
                "annotations": {
                    "cert-manager.io/certificate-name": name,
                    "cert-manager.io/certificate-revision": str(revision),
                    "cert-manager.io/private-key-secret-name": key_secret},
                "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                                     "name": name, "uid": cert["metadata"].get("uid", ""),
                                     "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {
                "request": base64.b64encode(csr).decode(),
                "issuerRef": {"name": ref.name, "kind": ref.kind, "group": ref.group},
                "duration": format_duration(parse_duration(spec["duration"]))
                if spec.get("duration") else format_duration(DEFAULT_DURATION),
                "isCA": bool(spec.get("isCA", False)),
                "usages": list(spec.get("usages") or ["digital signature", "key encipherment"]),
                "username": _REQUESTER,
                "groups": ["system:serviceaccounts", "system:serviceaccounts:cert-manager",
                           "system:authenticated"],
            },
        }
        try:
            request = await self.client.create(_path("CertificateRequest", ns), body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            # A retry of the same revision: the request manager deletes the failed request and
            # creates one for the new private key (requestmanager_controller.go,
            # deleteCurrentFailedRequests).
            await self.client.delete(_path("CertificateRequest", ns, request_name))
            request = await self.client.create(_path("CertificateRequest", ns), body)
        stamp = format_time(now)
        conditions = [{"type": "Approved", "status": "True", "reason": "cert-manager.io",
                       "message": "Certificate request has been approved by cert-manager.io",
                       "lastTransitionTime": stamp}]
        status: Obj
        if ck is None:
            conditions.append({"type": "Ready", "status": "False", "reason": "Failed",
                               "message": failure, "lastTransitionTime": stamp})
            status = {"conditions": conditions, "failureTime": stamp}
        else:
            conditions.append({"type": "Ready", "status": "True", "reason": "Issued",
                               "message": "Certificate fetched from issuer successfully",
                               "lastTransitionTime": stamp})
            data = pki.tls_secret_data(ck)
            status = {"conditions": conditions,
                      "certificate": base64.b64encode(data["tls.crt"].encode()).decode(),
                      "ca": base64.b64encode(data["ca.crt"].encode()).decode()}
        request = await self._patch_status("CertificateRequest", request, status)
        component = f"cert-manager-certificaterequests-issuer-{issuer_type.lower()}"
        if ck is None:
            await self._event(request, "CertificateRequest", "Warning", "SigningError", failure,
                              component)
        else:
            await self._event(request, "CertificateRequest", "Normal", "CertificateIssued",
                              "Certificate fetched from issuer successfully", component)
        return request
