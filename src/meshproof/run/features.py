"""pytest plugin (declared in the root conftest): Gherkin files are collected directly.

- every ``*.feature`` file under ``bdd_features_base_dir`` (``features/`` at the
  root; the runner points it elsewhere for its own tests) becomes a test module
  whose tests are its scenarios, so nobody writes ``scenarios()`` glue modules;
- every catalog guarantee id is a registered marker (pytest-bdd turns tags into
  markers and ``--strict-markers`` is on, so a misspelt id fails collection);
- a scenario tagged with a guarantee id gets the profile markers the catalog
  gives that guarantee (and ``destructive`` when it is), so ``-m nightly``
  selects exactly the catalog's nightly guarantees without repeating them as tags.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import scenario
from pytest_bdd.exceptions import GherkinParseError
from pytest_bdd.feature import get_feature

from meshproof.catalog import PROFILES, load_catalog
from meshproof.run.items import guarantee_ids_of

__all__ = ["FeatureFile", "features_base_dir"]


def features_base_dir(config: pytest.Config) -> Path:
    """The directory whose ``*.feature`` files are collected (``bdd_features_base_dir``)."""
    raw = config.getini("bdd_features_base_dir") or "features"
    path = Path(str(raw))
    return path if path.is_absolute() else (config.rootpath / path).resolve()


def _noop() -> None:
    """The body of a collected scenario: pytest-bdd runs the steps before it."""


class FeatureFile(pytest.Module):
    """A ``.feature`` file as a pytest module: one test function per scenario."""

    def _getobj(self) -> Any:
        try:
            feature = get_feature(str(self.path.parent), self.path.name)
        except (GherkinParseError, OSError, UnicodeDecodeError) as exc:
            raise self.CollectError(f"{self.path}: cannot parse the feature: {exc}") from exc
        module = types.ModuleType(f"meshproof_feature_{self.path.stem}")
        module.__file__ = str(self.path)
        taken: set[str] = set()
        for name in feature.scenarios:
            bound = scenario(self.path.name, name, features_base_dir=str(self.path.parent))(_noop)
            base = "test_" + "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
            test_name, n = base, 0
            while test_name in taken:
                n += 1
                test_name = f"{base}_{n}"
            taken.add(test_name)
            setattr(module, test_name, bound)
        return module


def pytest_configure(config: pytest.Config) -> None:
    """Register every guarantee id and profile as a marker."""
    for guarantee in load_catalog():
        config.addinivalue_line("markers", f"{guarantee.id}: checks guarantee {guarantee.id}")
    for profile in PROFILES:
        config.addinivalue_line("markers", f"{profile}: part of the {profile} profile")
    config.addinivalue_line("markers", "destructive: breaks things inside the allowed blast radius")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect ``*.feature`` files that live under the features directory."""
    if file_path.suffix != ".feature":
        return None
    if not file_path.resolve().is_relative_to(features_base_dir(parent.config)):
        return None
    collector: FeatureFile = FeatureFile.from_parent(parent, path=file_path)
    return collector


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give scenarios their guarantees' profile markers before ``-m`` deselects, and put
    the destructive ones after the others."""
    catalog = load_catalog()
    for item in items:
        for gid in guarantee_ids_of(item):
            guarantee = catalog.get(gid)
            present = {m.name for m in item.iter_markers()}
            for profile in guarantee.profiles:
                if profile not in present:
                    item.add_marker(profile)
            if guarantee.destructive and "destructive" not in present:
                item.add_marker("destructive")
    # Destructive scenarios last, each group in file order: the faults a drill leaves in
    # Prometheus's windows (a delay, failed handshakes) must not be judged by a
    # non-destructive guarantee of the same run (the preupgrade profile has both).
    items.sort(key=lambda item: item.get_closest_marker("destructive") is not None)
