"""What the switches share: API clients for the lab's contexts and saved originals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubernetes import client, config

from meshproof.lab.state import LabPaths

__all__ = ["CONTEXTS", "api", "custom", "forget", "load", "plain", "save"]

CONTEXTS = ("aws-eks", "gcp-gke")


def api(paths: LabPaths, context: str) -> client.ApiClient:
    return config.new_client_from_config(str(paths.kubeconfig), context=context,
                                         persist_config=False)


def custom(paths: LabPaths, context: str) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api(paths, context))


def plain(obj: Any) -> Any:
    """A client model as the JSON the API server sent (camelCase keys, no None fields)."""
    return client.ApiClient().sanitize_for_serialization(obj)


def _file(paths: LabPaths, name: str) -> Path:
    return paths.root / "switches" / f"{name}.json"


def save(paths: LabPaths, name: str, data: Any) -> None:
    """Keep what a switch changed, once: a second break must not overwrite the original."""
    path = _file(paths, name)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def load(paths: LabPaths, name: str) -> Any:
    path = _file(paths, name)
    return json.loads(path.read_text()) if path.exists() else None


def forget(paths: LabPaths, name: str) -> None:
    _file(paths, name).unlink(missing_ok=True)
