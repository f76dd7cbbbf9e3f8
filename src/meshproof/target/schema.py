"""The typed shape of a target file (see docs/targets.md).

Models here check one field at a time (types, names, URLs, that named files
exist); checks that span fields or need the catalog live in ``loading``.
Paths are resolved against the directory of the target file, passed in the
validation context as ``base_dir``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from meshproof.catalog import Catalog, EffectiveThresholds, ThresholdOverride
from meshproof.timeouts import DEFAULT_TIMEOUTS, Timeouts

__all__ = [
    "ClusterSettings",
    "ConsulSettings",
    "DestructiveSettings",
    "ProbeSettings",
    "PrometheusSettings",
    "ServiceRef",
    "Target",
]

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NON_BLANK_PATTERN = r"^\S(.*\S)?$"
"""The pattern of free-text fields: not blank, no spaces around the value."""


def _existing_file(value: Any, info: ValidationInfo) -> Path:
    """Resolve a path string against the target file's directory and require a readable file."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a file path as a string; write the path in quotes if needed")
    base = Path((info.context or {}).get("base_dir", "."))
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = base / path
    path = path.resolve()
    if not path.exists():
        raise ValueError(
            f"file {path} does not exist; fix the path (relative paths start at {base})"
        )
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file; point it at a file")
    return path


ExistingFile = Annotated[Path, BeforeValidator(_existing_file)]
DnsLabel = Annotated[str, Field(pattern=_DNS_LABEL, max_length=63)]
NonEmpty = Annotated[str, Field(min_length=1, pattern=NON_BLANK_PATTERN)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PrometheusSettings(_Section):
    """How to reach one cluster's Prometheus HTTP API."""

    url: str
    """Base URL, e.g. ``https://prometheus.staging.example.com`` or ``http://127.0.0.1:9090``."""
    bearer_token_file: ExistingFile | None = None
    """A file holding the bearer token sent as ``Authorization: Bearer``; read at load."""
    ca_file: ExistingFile | None = None
    """PEM bundle to verify the server's certificate with."""
    insecure_skip_verify: bool = False
    """Skip TLS verification (test setups only); cannot be combined with ``ca_file``."""

    _bearer_token: SecretStr | None = PrivateAttr(default=None)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:  # urlsplit and .port reject malformed hosts and ports
            parts, port_ok = urlsplit(""), False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or " " in url:
            raise ValueError(
                f"{url!r} is not an http(s) URL; write it as http://HOST:PORT or https://HOST"
            )
        return url.rstrip("/")

    @model_validator(mode="after")
    def _tls_and_token(self) -> PrometheusSettings:
        if self.insecure_skip_verify and self.ca_file is not None:
            raise ValueError(
                "ca_file and insecure_skip_verify: true contradict each other; keep one"
            )
        if self.bearer_token_file is not None:
            try:
                token = self.bearer_token_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(
                    f"bearer_token_file {self.bearer_token_file} cannot be read ({exc.__class__.__name__}); "
                    "make it a readable text file"
                ) from None
            if not token:
                raise ValueError(
                    f"bearer_token_file {self.bearer_token_file} is empty; put the token in it"
                )
            self._bearer_token = SecretStr(token)
        return self

    @property
    def bearer_token(self) -> SecretStr | None:
        """The token read from ``bearer_token_file`` (masked when printed)."""
        return self._bearer_token


class ConsulSettings(_Section):
    """The Consul HTTP API, reached through the API server's services/proxy."""

    service: DnsLabel = "consul-server"
    namespace: DnsLabel = "consul"
    port: Port = 8500


class ClusterSettings(_Section):
    """One cluster of the mesh."""

    name: DnsLabel
    """The cluster's name in the mesh (``multiCluster.clusterName``)."""
    context: NonEmpty
    """The kubeconfig context that reaches it."""
    kubeconfig: ExistingFile | None = None
    """Kubeconfig file; default: the client's usual lookup (``$KUBECONFIG``, ``~/.kube/config``)."""
    prometheus: PrometheusSettings | None
    """Required; ``null`` states the cluster has no Prometheus (its guarantees are not measurable)."""
    consul: ConsulSettings | None = None
    network: NonEmpty
    """The Istio network the cluster is on (``topology.istio.io/network``)."""


class ServiceRef(_Section):
    """A service under test."""

    name: DnsLabel
    namespace: DnsLabel
    port: Port | None = None


class DestructiveSettings(_Section):
    """The blast radius: faults a run may apply, by cluster. Default: none."""

    allowed: dict[DnsLabel, list[DnsLabel]] = Field(default_factory=dict)


class ProbeSettings(_Section):
    """The in-mesh probe agent."""

    image: NonEmpty | None = None
    """Container image to run the agent on; ``None`` leaves the choice to the suite."""


class Target(_Section):
    """A mesh to prove: its clusters, what is under test, and how far a run may go."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$", max_length=63)]
    clusters: list[ClusterSettings] = Field(min_length=1)
    namespaces: list[DnsLabel] = Field(min_length=1)
    strict_namespaces: list[DnsLabel] = Field(default_factory=list)
    """Namespaces the mesh promises STRICT mutual TLS in (MTLS-STRICT); the promise comes
    from here, not from the live PeerAuthentications, so a weakened policy is caught."""
    services: list[ServiceRef] = Field(default_factory=list)
    destructive: DestructiveSettings = Field(default_factory=DestructiveSettings)
    thresholds: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Overrides by guarantee id: ``{field: value, reason: "..."}``; checked against the catalog."""
    timeouts: dict[str, float] = Field(default_factory=dict)
    """Overrides of ``meshproof.timeouts.Timeouts`` fields, in seconds."""
    probe: ProbeSettings = Field(default_factory=ProbeSettings)

    _source: Path | None = PrivateAttr(default=None)

    @property
    def source(self) -> Path | None:
        """The file this target was loaded from."""
        return self._source

    @property
    def cluster_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.clusters)

    def cluster(self, name: str) -> ClusterSettings:
        """The cluster called ``name``; ``KeyError`` when there is none."""
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise KeyError(name)

    def allows(self, cluster: str, fault: str) -> bool:
        """Whether the blast radius lets a run apply ``fault`` in ``cluster``."""
        return fault in self.destructive.allowed.get(cluster, [])

    @property
    def threshold_overrides(self) -> dict[str, ThresholdOverride]:
        """The ``thresholds:`` section split into values and reason."""
        return {gid: _override(body) for gid, body in self.thresholds.items()}

    def effective_thresholds(self, catalog: Catalog, guarantee_id: str) -> EffectiveThresholds:
        """A guarantee's thresholds after this target's overrides."""
        return catalog.effective_thresholds(guarantee_id, self.threshold_overrides)

    @property
    def resolved_timeouts(self) -> Timeouts:
        """The project's timeouts with this target's overrides applied."""
        return DEFAULT_TIMEOUTS.with_overrides(self.timeouts)


def _override(body: Mapping[str, Any]) -> ThresholdOverride:
    reason = body.get("reason")
    values = {k: v for k, v in body.items() if k != "reason"}
    return ThresholdOverride(values=values, reason=reason if isinstance(reason, str) else None)
