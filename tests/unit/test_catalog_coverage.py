"""Every guarantee is referenced by a feature or an experiment, and nothing names an unknown id.

Feature scenarios carry guarantee ids as tags (``@XC-LATENCY``); experiments list
them in their ``tags``. A tag written in capitals with the id's shape is taken
as a guarantee id; other tags (``@nightly``, ``@destructive``) are ignored.

``NOT_YET_COVERED`` lists the guarantees nothing implements yet. It may only
shrink: the test fails when an id in it is covered (remove it from the set).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from meshproof.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[2]
ID_TAG = re.compile(r"(?<![\w@])@([A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+|[A-Z][A-Z0-9]{2,})\b")
ID_SHAPE = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$")

NOT_YET_COVERED: set[str] = set()


def feature_references() -> dict[str, set[str]]:
    """Guarantee ids tagged in ``features/**/*.feature``, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "features").glob("**/*.feature")):
        for line in path.read_text(encoding="utf-8").splitlines():
            stripped = line.strip()
            if stripped.startswith("@"):
                for tag in ID_TAG.findall(stripped):
                    found.setdefault(tag, set()).add(str(path.relative_to(ROOT)))
    return found


def experiment_references() -> dict[str, set[str]]:
    """Guarantee ids in the ``tags`` of ``experiments/*.json``, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "experiments").glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        tags = document.get("tags", []) if isinstance(document, dict) else []
        for tag in tags:
            if isinstance(tag, str) and ID_SHAPE.match(tag) and any(c.isupper() for c in tag):
                found.setdefault(tag, set()).add(str(path.relative_to(ROOT)))
    return found


def _all_references() -> dict[str, set[str]]:
    refs = feature_references()
    for gid, files in experiment_references().items():
        refs.setdefault(gid, set()).update(files)
    return refs


def test_features_and_experiments_name_only_known_guarantees() -> None:
    known = set(load_catalog().ids)
    unknown = {gid: sorted(files) for gid, files in _all_references().items() if gid not in known}
    assert not unknown, f"unknown guarantee ids (not in src/meshproof/catalog.yaml): {unknown}"


def test_every_guarantee_is_covered_unless_listed_as_not_yet_covered() -> None:
    covered = set(_all_references())
    uncovered = set(load_catalog().ids) - covered - NOT_YET_COVERED
    assert not uncovered, f"guarantees referenced by no feature or experiment: {sorted(uncovered)}"


def test_not_yet_covered_only_shrinks() -> None:
    covered = set(_all_references())
    now_covered = NOT_YET_COVERED & covered
    assert not now_covered, (
        f"covered now, remove from NOT_YET_COVERED in {Path(__file__).name}: {sorted(now_covered)}"
    )
    stale = NOT_YET_COVERED - set(load_catalog().ids)
    assert not stale, f"NOT_YET_COVERED names ids the catalog does not have: {sorted(stale)}"


def test_the_scanner_finds_ids_in_tags() -> None:
    # The scanner itself must be able to fail: a tag line with ids and other tags.
    line = "@nightly @XC-LATENCY @ROUTING @destructive"
    assert set(ID_TAG.findall(line)) == {"XC-LATENCY", "ROUTING"}
    assert ID_TAG.findall("Feature: email me@EXAMPLE-COM") == []
