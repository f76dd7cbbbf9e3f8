"""The base fixtures every step module uses (a plugin, declared in the root conftest).

- ``target`` (session): the loaded ``Target`` of ``--target``; without one, every
  scenario is skipped with the reason.
- ``catalog`` (session): the guarantee ``Catalog``.
- ``timeouts`` (session): ``Timeouts`` with the target's overrides.
- ``guarantees``: the catalog entries of the scenario's id tags.
- ``guarantee``: the one guarantee the scenario checks (exactly one id tag).
- ``thresholds``: that guarantee's ``EffectiveThresholds`` on this target.
- ``scenario_cluster``: the ``ClusterSettings`` of the Outline's ``cluster``
  column, or None when the scenario covers the whole mesh.
- ``evidence``: the scenario's ``Evidence`` recorder (``add``, ``judgement``,
  ``timeline``, ``load``, ``conclude``); the report shows what it holds.

Conventions for features and steps: docs/reports.md.
"""

from __future__ import annotations

import pytest

from meshproof.catalog import Catalog, EffectiveThresholds, Guarantee, load_catalog
from meshproof.errors import ConfigError
from meshproof.run.evidence import EVIDENCE_KEY, Evidence
from meshproof.run.features import FeatureFile
from meshproof.run.items import example_cluster, guarantee_ids_of
from meshproof.target import ClusterSettings, Target, load_target
from meshproof.timeouts import Timeouts

__all__ = [
    "catalog",
    "evidence",
    "guarantee",
    "guarantees",
    "scenario_cluster",
    "target",
    "thresholds",
    "timeouts",
]

NO_TARGET = (
    "no --target given: scenarios prove guarantees on a mesh; run "
    "`meshproof run --target lab|FILE --profile nightly` or `pytest features --target lab|FILE`"
)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip every scenario cleanly when there is no target to measure."""
    if isinstance(item.parent, FeatureFile) and not item.config.getoption("--target"):
        pytest.skip(NO_TARGET)


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Target:
    """The target of ``--target`` (``lab`` or a file), validated."""
    spec = pytestconfig.getoption("--target")
    if not spec:
        pytest.skip(NO_TARGET)
    try:
        return load_target(spec)
    except ConfigError as exc:
        pytest.fail(f"--target {spec}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The guarantee catalog."""
    return load_catalog()


@pytest.fixture(scope="session")
def timeouts(target: Target) -> Timeouts:
    """Every wait's bound, with the target's overrides applied."""
    return target.resolved_timeouts


@pytest.fixture
def guarantees(request: pytest.FixtureRequest, catalog: Catalog) -> tuple[Guarantee, ...]:
    """The guarantees the scenario is tagged with (feature and scenario tags)."""
    return tuple(catalog.get(gid) for gid in guarantee_ids_of(request.node))


@pytest.fixture
def guarantee(request: pytest.FixtureRequest, guarantees: tuple[Guarantee, ...]) -> Guarantee:
    """The one guarantee the scenario checks; a scenario with none or several is a mistake."""
    if len(guarantees) != 1:
        found = ", ".join(g.id for g in guarantees) or "none"
        raise ConfigError(
            f"scenario {request.node.nodeid}: the `guarantee` fixture needs exactly one "
            f"guarantee-id tag, found {found}; tag it with one id or use `guarantees`"
        )
    return guarantees[0]


@pytest.fixture
def thresholds(target: Target, catalog: Catalog, guarantee: Guarantee) -> EffectiveThresholds:
    """The scenario's guarantee thresholds with the target's overrides applied."""
    return target.effective_thresholds(catalog, guarantee.id)


@pytest.fixture
def scenario_cluster(request: pytest.FixtureRequest, target: Target) -> ClusterSettings | None:
    """The cluster the Outline example names (``cluster`` column); None for the whole mesh."""
    name = example_cluster(request.node)
    if name is None:
        return None
    try:
        return target.cluster(name)
    except KeyError:
        raise ConfigError(
            f"scenario {request.node.nodeid}: example cluster {name!r} is not a cluster of "
            f"target {target.name!r} ({', '.join(target.cluster_names)})"
        ) from None


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """The scenario's evidence recorder, scoped to its guarantee ids and example cluster."""
    recorder = Evidence(guarantee_ids_of(request.node), cluster=example_cluster(request.node))
    request.node.stash[EVIDENCE_KEY] = recorder
    return recorder
