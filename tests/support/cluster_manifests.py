"""Reads the manifests in ``clusters/`` for the static checks: every YAML document with its file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CLUSTERS_DIR",
    "REPO_ROOT",
    "SCHEMAS_DIR",
    "Doc",
    "documents",
    "manifest_files",
    "objects",
    "render_template",
    "versions",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTERS_DIR = REPO_ROOT / "clusters"
SCHEMAS_DIR = CLUSTERS_DIR / "schemas"

# A template's placeholders and the values the static checks render it with;
# the scripts substitute the real ones at bootstrap time.
_TEMPLATE_VALUES = {"@ADDRESS_RANGE@": "172.18.255.55-172.18.255.104"}


@dataclass(frozen=True)
class Doc:
    """One YAML document of a file under ``clusters/`` (``index`` counts from 0)."""

    path: Path
    index: int
    body: Any

    @property
    def where(self) -> str:
        """``clusters/<file>#<index>``, for failure messages."""
        return f"{self.path.relative_to(REPO_ROOT)}#{self.index}"

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", "")) if isinstance(self.body, dict) else ""

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", "")) if isinstance(self.body, dict) else ""

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.body.get("metadata") if isinstance(self.body, dict) else None
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        # kind's Cluster config names itself at the top level.
        top = self.body.get("name", "") if isinstance(self.body, dict) else ""
        return str(self.metadata.get("name", top))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))


def manifest_files() -> list[Path]:
    """Every YAML file under ``clusters/`` except the schemas (which describe manifests)."""
    return sorted(p for p in CLUSTERS_DIR.rglob("*.yaml") if SCHEMAS_DIR not in p.parents)


def render_template(path: Path, text: str) -> str:
    """``text`` with a template's placeholders replaced by sample values."""
    if ".template." in path.name:
        for placeholder, value in _TEMPLATE_VALUES.items():
            text = text.replace(placeholder, value)
    return text


def documents(path: Path) -> Iterator[Doc]:
    """The non-empty documents of one file, templates rendered."""
    text = render_template(path, path.read_text())
    for index, body in enumerate(yaml.safe_load_all(text)):
        if body is not None:
            yield Doc(path, index, body)


def objects() -> list[Doc]:
    """Every document under ``clusters/`` that is an API object (has apiVersion and kind)."""
    return [
        d
        for p in manifest_files()
        for d in documents(p)
        if isinstance(d.body, dict) and "apiVersion" in d.body and "kind" in d.body
    ]


def versions() -> dict[str, str]:
    """``clusters/versions.env`` as a dict."""
    out: dict[str, str] = {}
    for line in (CLUSTERS_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out
