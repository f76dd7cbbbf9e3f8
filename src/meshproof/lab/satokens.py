"""Service-account tokens the lab's kubelet mounts and its API servers accept.

A real cluster signs them with the service-account issuer's key; the lab signs
them with HMAC-SHA256 under a secret the lab keeps in its state directory, so
a pod's token authenticates it as ``system:serviceaccount:<ns>:<sa>`` (and only
it), while a forged or expired token gets 401 like anywhere else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

__all__ = ["TokenIssuer"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    def __init__(self, secret: bytes, *, issuer: str = "https://kubernetes.default.svc.cluster.local"
                 ) -> None:
        self._secret = secret
        self.issuer = issuer

    def issue(self, namespace: str, service_account: str, *, audience: str = "",
              seconds: int = 3600, cluster: str = "") -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "aud": [audience or self.issuer],
            "iat": now, "nbf": now, "exp": now + seconds,
            "kubernetes.io": {"namespace": namespace,
                              "serviceaccount": {"name": service_account}},
        }
        if cluster:
            claims["kubernetes.io"]["cluster"] = cluster
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(signature)}"

    def verify(self, token: str) -> str | None:
        """The user name a valid token stands for, or None."""
        try:
            head, body, signature = token.split(".")
            expected = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(signature)):
                return None
            claims = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        now = time.time()
        if float(claims.get("exp", 0)) < now or float(claims.get("nbf", 0)) > now + 5:
            return None
        subject = str(claims.get("sub", ""))
        return subject if subject.startswith("system:serviceaccount:") else None
