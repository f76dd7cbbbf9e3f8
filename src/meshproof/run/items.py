"""What a collected scenario is about: its guarantee ids, its example cluster, its name.

Shared by the collection plugin, the results plugin and the step fixtures
(kept apart from the plugins so importing it registers nothing).
"""

from __future__ import annotations

import pytest
from pytest_bdd.scenario import scenario_wrapper_template_registry

from meshproof.catalog import load_catalog

__all__ = ["example_cluster", "guarantee_ids_of", "scenario_name"]


def guarantee_ids_of(item: pytest.Item) -> tuple[str, ...]:
    """The catalog ids among an item's markers (scenario, rule, feature tags), catalog order."""
    names = {m.name for m in item.iter_markers()}
    return tuple(gid for gid in load_catalog().ids if gid in names)


def example_cluster(item: pytest.Item) -> str | None:
    """The ``cluster`` column of the Scenario Outline example this item runs, if any."""
    callspec = getattr(item, "callspec", None)
    example = callspec.params.get("_pytest_bdd_example") if callspec else None
    value = example.get("cluster") if isinstance(example, dict) else None
    return str(value) if value else None


def scenario_name(item: pytest.Item) -> str:
    """The Gherkin name of the scenario an item runs (the item's name for other tests)."""
    function = getattr(item, "function", None)
    template = scenario_wrapper_template_registry.get(function) if function else None
    return str(template.name) if template is not None else item.name
