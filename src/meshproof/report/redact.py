"""Keeping credentials out of everything a run writes or prints.

The target model already masks its bearer tokens (``SecretStr``); this is the
second line: every known secret of the target (Prometheus bearer tokens,
kubeconfig tokens, passwords and client keys) is replaced by ``***`` in terminal
output and report files, whatever a step or a traceback put there.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from meshproof.target import Target

__all__ = ["MASK", "Redactor", "secrets_of"]

MASK = "***"
_MIN_SECRET = 6
"""Shorter values are not treated as secrets: masking them would garble ordinary text."""
_KUBECONFIG_SECRET_KEYS = ("token", "password", "client-key-data")


def _kubeconfig_secrets(path: Path) -> list[str]:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    found: list[str] = []
    users = config.get("users") if isinstance(config, dict) else None
    for entry in users if isinstance(users, list) else []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        found += [str(user[k]) for k in _KUBECONFIG_SECRET_KEYS if user.get(k)]
        token_file = user.get("tokenFile")
        if isinstance(token_file, str):
            # A token file the run cannot read holds nothing the run could leak.
            with contextlib.suppress(OSError, UnicodeDecodeError):
                found.append((path.parent / token_file).read_text(encoding="utf-8").strip())
    return found


def secrets_of(target: Target) -> tuple[str, ...]:
    """Every credential the target gives access to, as plain text (never print these)."""
    found: list[str] = []
    for cluster in target.clusters:
        token = cluster.prometheus.bearer_token if cluster.prometheus else None
        if token is not None:
            found.append(token.get_secret_value())
        if cluster.kubeconfig is not None:
            found += _kubeconfig_secrets(cluster.kubeconfig)
    return tuple(sorted({s for s in found if len(s) >= _MIN_SECRET}, key=len, reverse=True))


class Redactor:
    """Replaces known secrets in text and in JSON-like data."""

    def __init__(self, secrets: Iterable[str]) -> None:
        plain = {s for s in secrets if len(s) >= _MIN_SECRET}
        # A secret may reach a file already escaped for HTML/XML or JSON: mask those forms too.
        forms = plain | {html.escape(s) for s in plain} | {json.dumps(s)[1:-1] for s in plain}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(forms, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value
