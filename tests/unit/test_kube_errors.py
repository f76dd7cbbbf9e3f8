"""API errors become the project's exceptions, so callers can tell a refusal they may retry."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from meshproof.clients.kube import NotFoundError, WebhookUnavailable, describe_api_error
from meshproof.errors import MeshproofError, PermissionDenied, TargetUnreachable


def _error(status: int, message: str) -> ApiException:
    exc = ApiException(status=status, reason="Internal Server Error")
    exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


def test_an_unreachable_failing_webhook_is_told_apart_from_other_server_errors() -> None:
    # The API server's wording (k8s.io/apiserver pkg/admission/plugin/webhook/errors).
    refused = describe_api_error(_error(500, (
        'Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io":'
        ' failed to call webhook: Post "https://istiod.istio-system.svc:443/inject": dial tcp'
        " 10.0.0.5:443: connect: connection refused")), "POST pods", "aws-eks")
    assert isinstance(refused, WebhookUnavailable)
    assert "failed calling webhook" in str(refused)
    other = describe_api_error(_error(500, "etcdserver: request timed out"), "POST pods", "c")
    assert type(other) is MeshproofError


def test_status_codes_map_to_their_kinds() -> None:
    assert isinstance(describe_api_error(_error(403, "forbidden"), "GET", "c"), PermissionDenied)
    assert isinstance(describe_api_error(_error(404, "not found"), "GET", "c"), NotFoundError)
    assert isinstance(describe_api_error(_error(503, "unavailable"), "GET", "c"),
                      TargetUnreachable)
