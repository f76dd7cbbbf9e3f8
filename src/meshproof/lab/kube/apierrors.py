"""API errors beyond the four the seam names, and their ``Status`` objects.

The store and the server raise subclasses of ``interfaces.StoreError``; the
server turns any of them into the ``Status`` a real API server returns
(kubernetes/kubernetes ``staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go``).
"""

from __future__ import annotations

from typing import Any

from meshproof.lab.kube.interfaces import AlreadyExists, Conflict, Invalid, NotFound, StoreError

__all__ = [
    "BadRequest",
    "Expired",
    "Forbidden",
    "MethodNotAllowed",
    "ServiceUnavailable",
    "StoreError",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "status_for",
    "status_object",
]


class BadRequest(StoreError):
    """400, reason BadRequest."""


class Unauthorized(StoreError):
    """401, reason Unauthorized."""


class Forbidden(StoreError):
    """403, reason Forbidden (e.g. creating in a terminating namespace)."""


class MethodNotAllowed(StoreError):
    """405, reason MethodNotAllowed."""


class Expired(StoreError):
    """410, reason Expired: a watch or list from a resourceVersion older than the history kept."""


class UnsupportedMediaType(StoreError):
    """415, reason UnsupportedMediaType (a patch type the resource does not take)."""


class TooManyRequests(StoreError):
    """429, reason TooManyRequests (an eviction a PodDisruptionBudget forbids)."""


class ServiceUnavailable(StoreError):
    """503, reason ServiceUnavailable (a proxy target that does not answer, no kubelet)."""


_CODES: list[tuple[type[StoreError], int, str]] = [
    (NotFound, 404, "NotFound"),
    (AlreadyExists, 409, "AlreadyExists"),
    (Conflict, 409, "Conflict"),
    (Invalid, 422, "Invalid"),
    (BadRequest, 400, "BadRequest"),
    (Unauthorized, 401, "Unauthorized"),
    (Forbidden, 403, "Forbidden"),
    (MethodNotAllowed, 405, "MethodNotAllowed"),
    (Expired, 410, "Expired"),
    (UnsupportedMediaType, 415, "UnsupportedMediaType"),
    (TooManyRequests, 429, "TooManyRequests"),
    (ServiceUnavailable, 503, "ServiceUnavailable"),
]


def status_object(code: int, reason: str, message: str,
                  details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``meta.k8s.io/v1 Status`` with status Failure."""
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                              "status": "Failure", "message": message, "reason": reason,
                              "code": code}
    if details:
        status["details"] = details
    return status


def status_for(exc: StoreError) -> dict[str, Any]:
    """The ``Status`` for a store/server error (500 InternalError for an unknown subclass)."""
    for cls, code, reason in _CODES:
        if isinstance(exc, cls):
            return status_object(code, reason, str(exc), exc.details or None)
    return status_object(500, "InternalError", str(exc), exc.details or None)
