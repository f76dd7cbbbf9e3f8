"""Step definitions for ``features/``: one module per runbook area, thin, looping over clusters.

The root conftest loads every module here as a pytest plugin; the base fixtures
(``target``, ``catalog``, ``guarantee``, ``thresholds``, ``evidence``, ...) are in
``steps.fixtures``. Conventions: docs/reports.md.
"""
