"""The ``cert-expiring`` break switch: a flag file the controller watches.

``<lab dir>/breaks/<cluster>/cert-expiring.json`` (or ``$MESHPROOF_LAB_CERT_BREAK_DIR``
seen by the controller) holds ``{"certificates": ["istio-system/tls-cert"],
"remaining": "120h"}``. While it exists, the cluster's controller

1. re-issues each named Certificate so that it is valid for only ``remaining`` more
   (notBefore in the past, so its lifetime is the spec's duration): the state a
   certificate is in when renewals have been failing for weeks;
2. fails every signing by a CA Issuer / ClusterIssuer, as when the CA key is unusable:
   the CertificateRequest ends Ready=False reason Failed, the Certificate gets
   Issuing=False reason Failed with the error, a Warning event, lastFailureTime and
   failedIssuanceAttempts, and retries with cert-manager's backoff.

Removing the file heals: the failed Certificates are retried at once and renew.
See this package's README for why Ready stays True until the certificate expires.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from meshproof.errors import ConfigError, LabError
from meshproof.lab.certmanager.durations import parse_duration

__all__ = [
    "BREAK_DIR_ENV",
    "BREAK_FILE",
    "DEFAULT_CERTIFICATES",
    "DEFAULT_REMAINING",
    "CertExpiring",
    "apply_cert_expiring",
    "break_dir",
    "clear_break",
    "pod_break_dir",
    "read_break",
    "revert_cert_expiring",
    "write_break",
]

BREAK_FILE = "cert-expiring.json"
BREAK_DIR_ENV = "MESHPROOF_LAB_CERT_BREAK_DIR"
"""Overrides where the controller looks for the flag file (tests set it)."""
DEFAULT_CERTIFICATES = ("istio-system/tls-cert",)
"""The ingress gateway's certificate (clusters/cert-manager/tls-cert.yaml)."""
DEFAULT_REMAINING = "120h"
"""Five days: inside the runbook's "expiring < 7 days" alert."""


@dataclass(frozen=True, slots=True)
class CertExpiring:
    """An active ``cert-expiring`` break as the controller reads it."""

    certificates: tuple[str, ...]
    """``namespace/name`` of each Certificate left close to expiry."""
    remaining: datetime.timedelta
    """How long those certificates stay valid from the moment of the break (≤ 0: expired)."""


def break_dir(lab_root: Path, cluster: str) -> Path:
    """Where a lab's switches put the flag file for ``cluster``."""
    return lab_root / "breaks" / cluster


def pod_break_dir(pod_dir: Path, cluster: str, env: dict[str, str]) -> Path | None:
    """Where a controller in the pod at ``pod_dir`` looks: ``$MESHPROOF_LAB_CERT_BREAK_DIR``,
    else ``break_dir`` of the lab that holds the pod (``<lab>/pods/<cluster>/<ns>/<pod>``);
    None when neither applies (the controller is then never broken)."""
    if env.get(BREAK_DIR_ENV):
        return Path(env[BREAK_DIR_ENV])
    parents = pod_dir.resolve().parents
    if len(parents) > 3 and parents[2].name == "pods":
        return break_dir(parents[3], cluster)
    return None


def write_break(directory: Path, *, certificates: tuple[str, ...] = DEFAULT_CERTIFICATES,
                remaining: str = DEFAULT_REMAINING) -> Path:
    """Put the flag file in ``directory`` (replaced atomically)."""
    parse_duration(remaining)  # refuse a bad value here, not in the controller
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / BREAK_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"certificates": list(certificates), "remaining": remaining}))
    tmp.replace(path)
    return path


def clear_break(directory: Path) -> None:
    (directory / BREAK_FILE).unlink(missing_ok=True)


def read_break(directory: Path) -> CertExpiring | None:
    """The active break in ``directory``, or None. A malformed file raises ``ConfigError``."""
    path = directory / BREAK_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read break file {path}: {exc}") from exc
    try:
        data = json.loads(text) if text.strip() else {}
        certs = tuple(str(c) for c in data.get("certificates") or DEFAULT_CERTIFICATES)
        remaining = parse_duration(str(data.get("remaining") or DEFAULT_REMAINING))
    except (ValueError, AttributeError) as exc:
        raise ConfigError(f"break file {path} is not valid: {exc}") from exc
    return CertExpiring(certificates=certs, remaining=remaining)


def _clusters(lab_root: Path) -> list[str]:
    kubeconfig = lab_root / "kubeconfig"
    try:
        doc = yaml.safe_load(kubeconfig.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"cannot break cert-expiring: cannot read {kubeconfig}: {exc}") from exc
    return [str(c["name"]) for c in doc.get("contexts") or []]


def apply_cert_expiring(lab_root: Path) -> None:
    """``meshproof lab break cert-expiring``: every cluster of the lab's kubeconfig."""
    for cluster in _clusters(lab_root):
        write_break(break_dir(lab_root, cluster))


def revert_cert_expiring(lab_root: Path) -> None:
    """``meshproof lab heal cert-expiring``."""
    breaks = lab_root / "breaks"
    if breaks.is_dir():
        for directory in breaks.iterdir():
            clear_break(directory)
