"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def e2e_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the session's runs: each run writes its reports to ``<dir>/<name>``
    (``healthy``, ``healthy-pytest``, one per break switch), so a later test can compare two
    runs' reports, e.g. the healthy run with a switch's."""
    return tmp_path_factory.mktemp("e2e-reports", numbered=False)
