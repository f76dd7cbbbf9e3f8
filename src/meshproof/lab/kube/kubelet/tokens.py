"""Service-account tokens: issued to pods by the kubelet, accepted by their cluster's API server.

A token is a JWT (HS256 with a key of the cluster's own) whose claims follow the
real ones (``sub: system:serviceaccount:<ns>:<sa>``, ``aud``, ``exp``,
``kubernetes.io: {namespace, serviceaccount}``); istiod and other lab programs
read the claims, the API server checks the signature, the expiry and that the
audience is its own. Like the kubelet, a pod's token is renewed once 80 % of its
lifetime has passed (kubernetes/kubernetes ``pkg/kubelet/token/token_manager.go``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable

__all__ = ["API_AUDIENCE", "TokenIssuer"]

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Signs and checks the service-account tokens of one cluster."""

    def __init__(self, cluster: str, *, key: bytes | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self._key = key or secrets.token_bytes(32)
        self._clock = clock
        self._cache: dict[tuple[str, str, str, int], tuple[str, float]] = {}

    def issue(self, namespace: str, service_account: str, *, audience: str = "",
              seconds: int = 3600) -> str:
        """A token for ``namespace/service_account``; the same one until 80 % of its life."""
        audience = audience or API_AUDIENCE
        key = (namespace, service_account, audience, seconds)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now < cached[1]:
            return cached[0]
        claims = {
            "iss": API_AUDIENCE, "sub": f"system:serviceaccount:{namespace}:{service_account}",
            "aud": [audience], "iat": int(now), "nbf": int(now), "exp": int(now) + seconds,
            "kubernetes.io": {"namespace": namespace,
                              "serviceaccount": {"name": service_account}},
        }
        header = {"alg": "HS256", "typ": "JWT", "kid": self.cluster}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64(signature)}"
        self._cache[key] = (token, now + 0.8 * seconds)
        return token

    def authenticate(self, token: str) -> str | None:
        """The user a token stands for (``system:serviceaccount:<ns>:<sa>``), or None when it
        is not one of ours, has expired, or is for another audience (e.g. ``istio-ca``)."""
        try:
            head, body, signature = token.split(".")
            expected = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(signature)):
                return None
            claims = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        audiences = claims.get("aud") or []
        if API_AUDIENCE not in (audiences if isinstance(audiences, list) else [audiences]):
            return None
        if float(claims.get("exp", 0)) <= self._clock():
            return None
        subject = str(claims.get("sub", ""))
        return subject if subject.startswith("system:serviceaccount:") else None
