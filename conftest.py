"""Root pytest configuration: the only place plugins and command-line options are declared.

Plugins: ``meshproof.run.features`` (collects ``features/*.feature`` directly,
registers guarantee ids and profiles as markers), ``meshproof.run.pytest_plugin``
(results and ``--meshproof-report DIR``) and every step module under
``steps/`` (found by file name, so adding ``steps/<area>.py`` is enough).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_STEPS = Path(__file__).resolve().parent / "steps"

# steps.fixtures first: the base fixtures every step module uses.
pytest_plugins: list[str] = [
    "meshproof.run.features",
    "meshproof.run.pytest_plugin",
    "steps.fixtures",
    *sorted(
        f"steps.{path.stem}"
        for path in _STEPS.glob("*.py")
        if path.stem not in ("__init__", "fixtures") and not path.stem.startswith("_")
    ),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshproof")
    group.addoption(
        "--target",
        action="store",
        default=None,
        help="target for the features: 'lab' or a target file (default: features are skipped)",
    )
