"""The guarantee catalog: every promise of the runbook meshproof proves, as data.

The catalog is ``catalog.yaml`` next to this module. It is loaded and validated
once (``load_catalog``); features, experiments and reports refer to guarantees
by id. Thresholds live only there; a target may override them
(``Catalog.effective_thresholds``): tightening is always allowed, loosening only
with a reason, which is kept so reports can show it.

Threshold names carry their direction: ``min_*`` and ``quantile`` are stricter
when higher, ``max_*`` when lower. ``window_s`` (the observation window) is
overridable too and is stricter when longer (more evidence).
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from meshproof.errors import ConfigError

__all__ = [
    "CATALOG_SCHEMA",
    "PROFILES",
    "Alert",
    "Catalog",
    "EffectiveThresholds",
    "Guarantee",
    "OverrideRejected",
    "Profile",
    "RunbookRef",
    "Sli",
    "Source",
    "ThresholdChange",
    "ThresholdOverride",
    "load_catalog",
    "threshold_direction",
]

CATALOG_SCHEMA = "meshproof.catalog/v1"
"""The ``schema`` value a catalog file (and ``meshproof catalog --json``) carries."""

Profile = Literal["nightly", "drill", "preupgrade"]
PROFILES: tuple[Profile, ...] = ("nightly", "drill", "preupgrade")
Source = Literal["prometheus", "envoy", "consul", "kubernetes", "probe", "istiod"]

GUARANTEE_ID = r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$"
_THRESHOLD_NAME = re.compile(r"^(min|max)_[a-z0-9_]+$|^quantile$")
WINDOW_FIELD = "window_s"

GuaranteeId = Annotated[str, Field(pattern=GUARANTEE_ID)]
Number = float | int


def threshold_direction(name: str) -> Literal["higher", "lower"]:
    """Which way a threshold gets stricter: ``"higher"`` or ``"lower"``."""
    if name.startswith("max_"):
        return "lower"
    if name.startswith("min_") or name in ("quantile", WINDOW_FIELD):
        return "higher"
    raise ValueError(f"threshold name {name!r} must start with min_ or max_, or be 'quantile'")


def _check_threshold_value(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for threshold ``name`` (None when it is)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "a string" if isinstance(value, str) else type(value).__name__
        return f"must be a number (no units), got {kind}"
    if not math.isfinite(value):
        return "must be a finite number"
    if name == WINDOW_FIELD:
        if not isinstance(value, int) or value <= 0:
            return "must be a whole number of seconds greater than 0"
        return None
    if name == "quantile":
        return None if 0 < value < 1 else "must be between 0 and 1 (exclusive)"
    if name.endswith("_ratio"):
        return None if 0 <= value <= 1 else "must be a share between 0 and 1"
    return None if value >= 0 else "must not be negative"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunbookRef(_Model):
    """Where in the runbook a guarantee or alert comes from."""

    lines: tuple[int, int]
    """First and last line (1-based, inclusive) of the runbook the quote is taken from."""
    section: str = Field(min_length=1)
    """The runbook section, as ``Heading / Subheading``."""
    quote: str = Field(min_length=1)
    """The runbook's words (whitespace normalised; may span the lines)."""

    @model_validator(mode="after")
    def _ordered(self) -> RunbookRef:
        first, last = self.lines
        if first < 1 or last < first:
            raise ValueError(f"lines {list(self.lines)} must be [first, last] with 1 <= first <= last")
        return self

    def cite(self) -> str:
        """``runbook L24`` or ``runbook L170-182``, for one-line output."""
        first, last = self.lines
        return f"runbook L{first}" if first == last else f"runbook L{first}-{last}"


class Sli(_Model):
    """What a guarantee measures and where the data comes from."""

    sources: tuple[Source, ...] = Field(min_length=1)
    measure: str = Field(min_length=1)


class Guarantee(_Model):
    """One promise of the runbook, with how it is measured and judged."""

    id: GuaranteeId
    statement: str = Field(min_length=1)
    area: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """Runbook area; the feature file ``features/<area>.feature`` holds its scenarios."""
    tier: Literal["core", "extended"]
    profiles: tuple[Profile, ...] = Field(min_length=1)
    destructive: bool
    """True when proving it needs a fault inside the target's blast radius."""
    sli: Sli
    thresholds: dict[str, Number] = Field(min_length=1)
    window_s: int = Field(gt=0)
    """Observation window, seconds."""
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    """What the guarantee is about (sample config values); not overridable."""
    threshold_origin: str = Field(min_length=1)
    """``runbook``, or why meshproof chose a number the runbook does not give."""
    runbook: tuple[RunbookRef, ...] = Field(min_length=1)

    @property
    def feature_file(self) -> str:
        """The feature file (under ``features/``) whose scenarios prove it."""
        return f"{self.area}.feature"

    @model_validator(mode="after")
    def _consistent(self) -> Guarantee:
        for name, value in self.thresholds.items():
            if not _THRESHOLD_NAME.match(name):
                raise ValueError(
                    f"{self.id}: threshold {name!r} must start with min_ or max_, or be 'quantile'"
                )
            problem = _check_threshold_value(name, value)
            if problem:
                raise ValueError(f"{self.id}: threshold {name} {problem}")
        if self.destructive and "nightly" in self.profiles:
            raise ValueError(f"{self.id}: a destructive guarantee cannot be in the nightly profile")
        if len(set(self.profiles)) != len(self.profiles):
            raise ValueError(f"{self.id}: profiles repeat")
        return self


class Alert(_Model):
    """One alert of the runbook, with the PromQL meshproof evaluates for it."""

    name: str = Field(pattern=r"^[A-Z][A-Za-z0-9]+$")
    severity: Literal["P0", "P1", "P2"]
    condition: str = Field(min_length=1)
    response_time: str = Field(min_length=1)
    action: str = Field(min_length=1)
    guarantee: GuaranteeId
    """The guarantee whose violation the alert signals."""
    trigger: str = Field(min_length=1)
    """The fault that should make it fire (what a drill does)."""
    expr: str = Field(min_length=1)
    """PromQL; ``$source_cluster`` style placeholders are filled by ``render``."""
    runbook_expr: str | None = None
    """The runbook's own query, when it gives one."""
    correction: str | None = None
    """Why ``expr`` differs from ``runbook_expr`` (or why there is one at all)."""
    runbook: tuple[RunbookRef, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _explained(self) -> Alert:
        if _normalise(self.expr) != _normalise(self.runbook_expr or "") and not self.correction:
            raise ValueError(f"alert {self.name}: expr differs from the runbook's without a correction")
        return self

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Names that ``render`` must be given, e.g. ``("source_cluster", "destination_cluster")``."""
        return tuple(string.Template(self.expr).get_identifiers())

    def render(self, **values: str) -> str:
        """The expression with its placeholders filled; missing ones raise ``ConfigError``."""
        missing = [p for p in self.placeholders if p not in values]
        if missing:
            raise ConfigError(
                f"alert {self.name}: cannot render its PromQL without {', '.join(missing)}"
            )
        return string.Template(self.expr).substitute(values)


class _CatalogFile(_Model):
    schema_: Literal["meshproof.catalog/v1"] = Field(alias="schema")
    runbook: dict[str, str]
    guarantees: tuple[Guarantee, ...] = Field(min_length=1)
    alerts: tuple[Alert, ...] = ()


class ThresholdOverride(_Model):
    """A target's override of one guarantee's thresholds (already parsed)."""

    values: dict[str, Any]
    """Threshold name -> value as the target wrote it; the catalog checks type and range."""
    reason: str | None = None

    @property
    def has_reason(self) -> bool:
        return bool(self.reason and self.reason.strip())


@dataclass(frozen=True, slots=True)
class ThresholdChange:
    """One threshold a target changed, as reports show it."""

    name: str
    catalog_value: Number
    target_value: Number
    loosened: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class EffectiveThresholds:
    """A guarantee's thresholds and window after a target's overrides."""

    guarantee_id: str
    values: Mapping[str, Number]
    window_s: int
    changes: tuple[ThresholdChange, ...] = ()

    def __getitem__(self, name: str) -> Number:
        return self.values[name]

    @property
    def loosened(self) -> tuple[ThresholdChange, ...]:
        """The changes that made the guarantee easier to hold (each has a reason)."""
        return tuple(c for c in self.changes if c.loosened)


class OverrideRejected(ConfigError):
    """A threshold override the catalog does not accept; ``field`` is None for the id itself."""

    def __init__(self, guarantee_id: str, field: str | None, detail: str) -> None:
        where = f"{guarantee_id}.{field}" if field else guarantee_id
        super().__init__(f"thresholds.{where}: {detail}")
        self.guarantee_id = guarantee_id
        self.field = field
        self.detail = detail


class Catalog:
    """The loaded catalog: guarantees by id (in file order) and the runbook's alerts."""

    def __init__(
        self,
        guarantees: tuple[Guarantee, ...],
        alerts: tuple[Alert, ...],
        runbook: Mapping[str, str],
    ) -> None:
        self._by_id = {g.id: g for g in guarantees}
        self.alerts = alerts
        self.runbook = dict(runbook)

    def __iter__(self) -> Iterator[Guarantee]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, guarantee_id: object) -> bool:
        return guarantee_id in self._by_id

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def get(self, guarantee_id: str) -> Guarantee:
        """The guarantee with this id; an unknown id raises ``ConfigError`` listing the known ones."""
        try:
            return self._by_id[guarantee_id]
        except KeyError:
            raise ConfigError(
                f"unknown guarantee id {guarantee_id!r}; known ids: {', '.join(self._by_id)}"
            ) from None

    def for_profile(self, profile: str) -> tuple[Guarantee, ...]:
        """The guarantees a profile runs, in catalog order."""
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r}; profiles: {', '.join(PROFILES)}")
        return tuple(g for g in self if profile in g.profiles)

    def alerts_for(self, guarantee_id: str) -> tuple[Alert, ...]:
        """The runbook alerts that signal a violation of this guarantee."""
        self.get(guarantee_id)
        return tuple(a for a in self.alerts if a.guarantee == guarantee_id)

    def effective_thresholds(
        self,
        guarantee_id: str,
        overrides: Mapping[str, ThresholdOverride] | None = None,
    ) -> EffectiveThresholds:
        """A guarantee's thresholds with a target's overrides applied.

        Raises ``OverrideRejected`` for an unknown id or field, a bad value, or a
        loosening without a reason.
        """
        guarantee = self.get(guarantee_id)
        override = (overrides or {}).get(guarantee_id)
        if override is None:
            return EffectiveThresholds(guarantee.id, dict(guarantee.thresholds), guarantee.window_s)
        return _apply(guarantee, override)

    def check_overrides(self, overrides: Mapping[str, ThresholdOverride]) -> None:
        """Validate every override against the catalog (see ``effective_thresholds``)."""
        for guarantee_id, override in overrides.items():
            if guarantee_id not in self._by_id:
                raise OverrideRejected(
                    guarantee_id,
                    None,
                    f"unknown guarantee id{_suggest(guarantee_id, self._by_id)}; "
                    "`meshproof catalog` lists the ids",
                )
            _apply(self._by_id[guarantee_id], override)

    def to_document(self) -> dict[str, Any]:
        """The catalog as the versioned JSON document ``meshproof catalog --json`` prints."""
        return {
            "schema": CATALOG_SCHEMA,
            "runbook": self.runbook,
            "guarantees": [g.model_dump(mode="json") for g in self],
            "alerts": [a.model_dump(mode="json") for a in self.alerts],
        }


def _apply(guarantee: Guarantee, override: ThresholdOverride) -> EffectiveThresholds:
    catalog_values: dict[str, Number] = {**guarantee.thresholds, WINDOW_FIELD: guarantee.window_s}
    if not override.values:
        raise OverrideRejected(
            guarantee.id,
            None,
            f"overrides nothing; give one of {', '.join(catalog_values)} (and a reason to loosen)",
        )
    changes: list[ThresholdChange] = []
    for name, value in override.values.items():
        if name not in catalog_values:
            raise OverrideRejected(
                guarantee.id,
                name,
                f"{guarantee.id} has no threshold {name!r}{_suggest(name, catalog_values)}; "
                f"its thresholds are {', '.join(catalog_values)}",
            )
        problem = _check_threshold_value(name, value)
        if problem:
            raise OverrideRejected(guarantee.id, name, f"{value!r} {problem}")
        assert isinstance(value, int | float)  # _check_threshold_value accepted it
        current = catalog_values[name]
        stricter_when_higher = threshold_direction(name) == "higher"
        loosened = value < current if stricter_when_higher else value > current
        if loosened and not override.has_reason:
            raise OverrideRejected(
                guarantee.id,
                name,
                f"{value!r} loosens the catalog's {current!r}; add `reason: \"...\"` under "
                f"{guarantee.id} to record why, or tighten it instead",
            )
        if value != current:
            changes.append(ThresholdChange(name, current, value, loosened, override.reason))
    values = {**guarantee.thresholds}
    window = guarantee.window_s
    for name, value in override.values.items():
        if name == WINDOW_FIELD:
            window = int(value)
        else:
            values[name] = value
    return EffectiveThresholds(guarantee.id, values, window, tuple(changes))


def _suggest(name: str, known: Mapping[str, object] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def _parse(path: Path | None) -> Catalog:
    where = str(path) if path else "meshproof/catalog.yaml"
    try:
        text = (
            path.read_text(encoding="utf-8")
            if path
            else resources.files("meshproof").joinpath("catalog.yaml").read_text(encoding="utf-8")
        )
        raw = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"catalog {where}: cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"catalog {where}: invalid YAML: {_normalise(str(exc))}") from exc
    try:
        parsed = _CatalogFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"catalog {where}: {_first_error(exc)}") from exc
    ids = [g.id for g in parsed.guarantees]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"catalog {where}: guarantee ids declared twice: {', '.join(duplicates)}")
    names = [a.name for a in parsed.alerts]
    if len(set(names)) != len(names):
        raise ConfigError(f"catalog {where}: alert names repeat")
    for alert in parsed.alerts:
        if alert.guarantee not in ids:
            raise ConfigError(
                f"catalog {where}: alert {alert.name} names unknown guarantee {alert.guarantee}"
            )
    return Catalog(parsed.guarantees, parsed.alerts, parsed.runbook)


@functools.lru_cache(maxsize=4)
def _cached(path: Path | None) -> Catalog:
    return _parse(path)


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Load and validate the catalog (the packaged one unless ``path`` is given).

    Raises ``ConfigError`` naming the file and the first problem found.
    """
    return _cached(Path(path).resolve() if path is not None else None)
