"""pilot-agent's jobs for a lab proxy: find istiod, get and rotate the workload certificate,
and stream config from istiod into the proxy.

istiod is found as the sidecar finds it in a cluster, by its Service
(``istiod.istio-system.svc``): the lab has no cluster DNS, so the name is looked
up through the pod's own API credentials. The certificate request carries the
pod's ``istio-token`` (audience ``istio-ca``); istiod's serving certificate is
verified against the mesh root in ``/var/run/secrets/istio/root-cert.pem``
(ConfigMap ``istio-ca-root-cert``). Rotation happens at half the certificate's
lifetime (FACTS.md), or ``SECRET_TTL`` sooner.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509

from meshproof.errors import TargetUnreachable
from meshproof.lab.images.context import ContainerContext
from meshproof.lab.mesh.config import Certificate, ProxyConfig

__all__ = ["IstiodClient", "resolve_service", "rotation_due", "with_certificate"]

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CERT = "/var/run/secrets/istio/root-cert.pem"
ISTIO_TOKEN = "/var/run/secrets/tokens/istio-token"
POLL_WAIT = 15.0


def _api_get(ctx: ContainerContext, path: str, timeout: float = 5.0) -> dict[str, Any]:
    host = ctx.env.get("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    port = ctx.env.get("KUBERNETES_SERVICE_PORT", "443")
    token = ctx.path(f"{SA_DIR}/token").read_text().strip()
    ca = ctx.path(f"{SA_DIR}/ca.crt")
    context = ssl.create_default_context(cafile=str(ca)) if ca.exists() else None
    scheme = "https" if context else "http"
    request = urllib.request.Request(f"{scheme}://{host}:{port}{path}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=timeout, context=context) as reply:
        return dict(json.loads(reply.read()))


def resolve_service(ctx: ContainerContext, name: str, namespace: str) -> str:
    """A Service's clusterIP, as cluster DNS would answer ``<name>.<namespace>.svc``."""
    try:
        svc = _api_get(ctx, f"/api/v1/namespaces/{namespace}/services/{name}")
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise TargetUnreachable(f"cannot resolve {name}.{namespace}.svc: {exc}") from exc
    ip = (svc.get("spec") or {}).get("clusterIP", "")
    if not ip or ip == "None":
        raise TargetUnreachable(f"{name}.{namespace}.svc has no clusterIP")
    return str(ip)


def rotation_due(cert_pem: str, *, now: datetime.datetime | None = None,
                 max_ttl: datetime.timedelta | None = None) -> datetime.datetime:
    """When a certificate should be replaced: at half its lifetime (or ``max_ttl`` after issue)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    due = start + (end - start) / 2
    if max_ttl is not None:
        due = min(due, start + max_ttl)
    return due


@dataclass(slots=True)
class IstiodClient:
    """Talks to istiod for one proxy; blocking calls run in a worker thread."""

    ctx: ContainerContext
    address: str = ""

    def _address(self) -> str:
        if not self.address:
            discovery = "istiod.istio-system.svc:15012"
            config = self.ctx.env.get("PROXY_CONFIG", "")
            if config:
                try:
                    discovery = json.loads(config).get("discoveryAddress", discovery)
                except ValueError:
                    pass
            name, namespace = discovery.split(":", 1)[0].split(".")[:2]
            self.address = resolve_service(self.ctx, name, namespace)
        return self.address

    def _certificate_sync(self) -> Certificate:
        root = self.ctx.path(ROOT_CERT)
        token = self.ctx.path(ISTIO_TOKEN)
        if not root.exists():
            raise TargetUnreachable(f"no mesh root certificate at {ROOT_CERT} yet")
        context = ssl.create_default_context(cafile=str(root))
        request = urllib.request.Request(
            f"https://{self._address()}:15012/lab/v1/certificate", method="POST", data=b"{}",
            headers={"Authorization": f"Bearer {token.read_text().strip()}",
                     "Content-Type": "application/json"})
        # istiod's certificate names its Service, not the clusterIP connected to.
        context.check_hostname = False
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as reply:
                body = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise TargetUnreachable(f"istiod refused the certificate request: "
                                    f"{exc.code} {exc.read()[:200]!r}") from exc
        except (OSError, urllib.error.URLError) as exc:
            self.address = ""
            raise TargetUnreachable(f"istiod CA unreachable: {exc}") from exc
        return Certificate(cert_chain_pem=body["cert_chain_pem"], key_pem=body["key_pem"],
                           root_bundle_pem=body["root_bundle_pem"])

    async def certificate(self) -> Certificate:
        return await asyncio.to_thread(self._certificate_sync)

    def _config_sync(self, applied: str, wait: float) -> ProxyConfig | None:
        query = (f"namespace={self.ctx.namespace}&pod={self.ctx.pod}&applied={applied}"
                 f"&wait={wait:g}")
        url = f"http://{self._address()}:15010/lab/v1/config?{query}"
        try:
            with urllib.request.urlopen(url, timeout=wait + 10) as reply:
                if reply.status == 304:
                    return None
                return ProxyConfig.from_json(reply.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return None
            raise TargetUnreachable(f"istiod config: HTTP {exc.code}") from exc
        except (OSError, urllib.error.URLError) as exc:
            self.address = ""
            raise TargetUnreachable(f"istiod unreachable: {exc}") from exc

    async def config(self, applied: str, wait: float = POLL_WAIT) -> ProxyConfig | None:
        return await asyncio.to_thread(self._config_sync, applied, wait)


def with_certificate(config: ProxyConfig, cert: Certificate) -> ProxyConfig:
    return replace(config, certificate=cert)

