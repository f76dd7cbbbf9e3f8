"""The project's exception tree.

::

    MeshproofError                 anything the suite itself reports (exit code 2 at the CLI)
    ├── ConfigError                a bad file or argument: target, catalog, experiment
    │   └── TargetError            a target file that does not parse or validate
    ├── TargetUnreachable          an API server, Prometheus, Consul or probe that does not answer
    ├── PermissionDenied           the target refuses what the run needs, or the blast radius forbids it
    ├── WaitTimeout                an ``eventually`` / ``consistently`` wait ran out
    └── LabError                   the lab could not be started, stopped or changed

Messages name the object, the cluster and what was being attempted; the CLI
prints ``str(exc)`` on one line and exits 2.
"""

from __future__ import annotations

__all__ = [
    "MeshproofError",
    "ConfigError",
    "TargetError",
    "TargetUnreachable",
    "PermissionDenied",
    "WaitTimeout",
    "LabError",
]


class MeshproofError(Exception):
    """Base of every error the suite raises on purpose."""


class ConfigError(MeshproofError):
    """A file or argument the user gave is wrong; the message says how to fix it."""


class TargetError(ConfigError):
    """A target file is missing, malformed or inconsistent."""


class TargetUnreachable(MeshproofError):
    """A server of the target (API server, Prometheus, Consul, probe agent) did not answer."""


class PermissionDenied(MeshproofError):
    """The target or its blast radius does not allow what was asked."""


class WaitTimeout(MeshproofError):
    """A bounded wait ended without the condition becoming (or staying) true."""


class LabError(MeshproofError):
    """The lab could not do what was asked of it."""
