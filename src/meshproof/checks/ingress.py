"""INGRESS: http redirects to https, TLS is served with the configured certificate, and the
API prefix reaches its backend — through the ingress gateway's external address."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any

from meshproof.clients.kube import ClusterApi
from meshproof.sli.verdict import Judgement, Verdict

__all__ = ["IngressFacts", "gateway_address", "probe_ingress", "judge_ingress"]


@dataclass(slots=True)
class IngressFacts:
    address: str
    redirect_status: int = 0
    redirect_location: str = ""
    served_sha256: str = ""
    route_status: int = 0
    route_server: str = ""
    error: str = ""


def gateway_address(api: ClusterApi, *, namespace: str = "istio-system",
                    service: str = "istio-ingressgateway") -> str:
    """The address clients use: the LoadBalancer's ingress IP or hostname."""
    svc = api.get(f"/api/v1/namespaces/{namespace}/services/{service}")
    for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ingress.get("ip") or ingress.get("hostname"):
            return str(ingress.get("ip") or ingress.get("hostname"))
    return ""


def probe_ingress(address: str, *, host: str, prefix: str, timeout: float) -> IngressFacts:
    facts = IngressFacts(address=address)
    path = prefix.rstrip("/") + "/headers"
    try:
        plain = http.client.HTTPConnection(address, 80, timeout=timeout)
        plain.request("GET", path, headers={"Host": host})
        reply = plain.getresponse()
        facts.redirect_status, facts.redirect_location = reply.status, reply.getheader(
            "Location", "")
        reply.read()
        plain.close()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection((address, 443), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            facts.served_sha256 = hashlib.sha256(tls.getpeercert(binary_form=True) or b"") \
                .hexdigest()
        secure = http.client.HTTPSConnection(address, 443, timeout=timeout, context=context)
        secure.request("GET", path, headers={"Host": host})
        reply = secure.getresponse()
        facts.route_status = reply.status
        body = reply.read()
        secure.close()
        headers = (json.loads(body or b"{}") or {}).get("headers") or {}
        xfcc = headers.get("X-Forwarded-Client-Cert") or [""]
        by = [p.split("=", 1)[1] for p in str(xfcc[0]).split(";") if p.startswith("By=")]
        facts.route_server = by[0] if by else ""
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
        facts.error = f"{type(exc).__name__}: {exc}"
    return facts


def _secret_sha256(api: ClusterApi, namespace: str, name: str) -> str:
    secret = api.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
    pem = base64.b64decode((secret.get("data") or {}).get("tls.crt", "")).decode()
    first = pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


def judge_ingress(api: ClusterApi, facts: IngressFacts, *, host: str, credential: str,
                  backend_account: str, credential_namespace: str = "istio-system"
                  ) -> Judgement:
    evidence: dict[str, Any] = {
        "address": facts.address, "redirect": [facts.redirect_status, facts.redirect_location],
        "route_status": facts.route_status, "route_server": facts.route_server}
    if not facts.address:
        return Judgement(Verdict.NOT_MEASURABLE, f"{api.cluster}: the ingress gateway has no "
                         "external address (Service status.loadBalancer is empty)", evidence)
    if facts.error:
        return Judgement(Verdict.VIOLATED, f"{api.cluster}: the ingress gateway at "
                         f"{facts.address} failed: {facts.error}", evidence)
    expected = _secret_sha256(api, credential_namespace, credential)
    evidence["certificate_matches"] = expected == facts.served_sha256
    problems = []
    if facts.redirect_status not in (301, 308) or not facts.redirect_location.startswith(
            f"https://{host}"):
        problems.append(f"http answered {facts.redirect_status} "
                        f"{facts.redirect_location!r} instead of a redirect to https")
    if expected != facts.served_sha256:
        problems.append(f"https served a certificate other than secret {credential}")
    if facts.route_status != 200 or not facts.route_server.endswith(f"/sa/{backend_account}"):
        problems.append(f"the API prefix answered {facts.route_status} from "
                        f"{facts.route_server or 'an unknown server'}")
    if problems:
        return Judgement(Verdict.VIOLATED, f"{api.cluster}: " + "; ".join(problems), evidence)
    return Judgement(Verdict.HELD, f"{api.cluster}: redirect, certificate {credential} and "
                     f"route to {backend_account} all as configured", evidence)
