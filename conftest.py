"""Root pytest configuration: the only place plugins and command-line options are declared."""

from __future__ import annotations

import pytest

pytest_plugins: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meshproof")
    group.addoption(
        "--target",
        action="store",
        default=None,
        help="target for the features: 'lab' or a target file (default: features are skipped)",
    )
