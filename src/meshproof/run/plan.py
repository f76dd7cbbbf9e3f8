"""What a run will do: the profile's guarantees, where the features are, the pytest command.

The features run in a subprocess of the same interpreter: steps may import
Locust (which monkey-patches with gevent) or hold cluster connections, and none
of that may leak into the runner's own process.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import meshproof
from meshproof.catalog import Catalog, Guarantee, load_catalog
from meshproof.errors import ConfigError
from meshproof.target import Target

__all__ = ["FEATURES_DIR_ENV", "REQUIRE_ALL_ENV", "RUN_ID_ENV", "RunPlan",
           "default_features_dir", "make_plan"]

FEATURES_DIR_ENV = "MESHPROOF_FEATURES_DIR"
"""Overrides the features directory (the runner's own tests point it at synthetic features)."""
RUN_ID_ENV = "MESHPROOF_RUN_ID"
"""The run's id, when the caller chooses it; the steps label what they create with it."""
REQUIRE_ALL_ENV = "MESHPROOF_REQUIRE_ALL"
"""``1`` makes any not-measurable guarantee fail the run, like ``--require-all``."""


def default_features_dir(cwd: Path | None = None) -> Path:
    """``features/`` in the working directory, else the one next to the installed sources."""
    here = (cwd or Path.cwd()) / "features"
    if here.is_dir():
        return here.resolve()
    return Path(meshproof.__file__).resolve().parents[2] / "features"


def _project_root(features_dir: Path) -> Path:
    """The nearest ancestor holding the root conftest (pytest's rootdir for the run)."""
    for parent in (features_dir, *features_dir.parents):
        if (parent / "conftest.py").is_file() and (parent / "pyproject.toml").is_file():
            return parent
    return features_dir.parent


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything a run needs decided before pytest starts."""

    target: Target
    profile: str
    guarantees: tuple[Guarantee, ...]
    """The profile's guarantees, in catalog order: each gets a verdict."""
    catalog: Catalog
    features_dir: Path
    report_dir: Path
    root: Path
    """The project root: pytest's rootdir and working directory (the root conftest lives there)."""
    require_all: bool
    run_id: str

    def pytest_command(self, results: Path, cucumber: Path) -> list[str]:
        """The command line of the pytest subprocess."""
        assert self.target.source is not None, "a loaded target always has a source file"
        return [
            sys.executable,
            "-m",
            "pytest",
            str(self.features_dir),
            "-m",
            self.profile,
            "--target",
            str(self.target.source),
            "-p",
            "meshproof.run.pytest_plugin",
            "--meshproof-results",
            str(results),
            "--cucumberjson",
            str(cucumber),
            "--rootdir",
            str(self.root),
            "-o",
            f"bdd_features_base_dir={self.features_dir}",
            "-p",
            "no:cacheprovider",
            "-q",
        ]


def make_plan(
    target: Target,
    profile: str,
    report_dir: Path,
    *,
    features_dir: Path | None = None,
    require_all: bool | None = None,
    catalog: Catalog | None = None,
) -> RunPlan:
    """Decide a run; a missing features directory is a ``ConfigError``."""
    catalog = catalog or load_catalog()
    guarantees = catalog.for_profile(profile)
    env_dir = os.environ.get(FEATURES_DIR_ENV)
    chosen = features_dir or (Path(env_dir) if env_dir else default_features_dir())
    chosen = chosen.expanduser().resolve()
    if not chosen.is_dir():
        raise ConfigError(
            f"features directory {chosen} does not exist; run from the meshproof checkout or "
            f"set {FEATURES_DIR_ENV} to the directory holding the .feature files"
        )
    if target.source is None:
        raise ConfigError(
            f"target {target.name!r} was not loaded from a file; load it with load_target"
        )
    if require_all is None:
        require_all = os.environ.get(REQUIRE_ALL_ENV, "") in ("1", "true", "yes")
    return RunPlan(
        target=target,
        profile=profile,
        guarantees=guarantees,
        catalog=catalog,
        features_dir=chosen,
        report_dir=report_dir.expanduser().resolve(),
        root=_project_root(chosen),
        require_all=require_all,
        run_id=os.environ.get(RUN_ID_ENV) or secrets.token_hex(4),
    )
