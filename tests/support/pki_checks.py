"""Checks of certificates with the real ``openssl`` binary, shared by the PKI unit and static tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["OPENSSL", "openssl_verify", "require_openssl"]

OPENSSL = shutil.which("openssl")


def require_openssl() -> str:
    """The path of ``openssl``, or skip the test saying how to get it."""
    if OPENSSL is None:
        pytest.skip(
            "openssl is not installed (`.ci/system-deps` installs it: apt-get install openssl)"
        )
    return OPENSSL


def openssl_verify(
    ca_file: Path,
    leaf: Path,
    *,
    untrusted: Path | None = None,
    purpose: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``openssl verify -CAfile ca_file [-untrusted ..] [-purpose ..] leaf`` (10 s bound)."""
    cmd = [require_openssl(), "verify", "-CAfile", str(ca_file)]
    if untrusted is not None:
        cmd += ["-untrusted", str(untrusted)]
    if purpose is not None:
        cmd += ["-purpose", purpose]
    cmd.append(str(leaf))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
