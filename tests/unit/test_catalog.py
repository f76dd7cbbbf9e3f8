"""The guarantee catalog: loading, validation, thresholds and overrides, runbook quotes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from meshproof.catalog import (
    PROFILES,
    Catalog,
    OverrideRejected,
    ThresholdOverride,
    load_catalog,
    threshold_direction,
)
from meshproof.errors import ConfigError

# The runbook is not part of the repository; where it is present (the shared
# seed on the development machines, or $MESHPROOF_RUNBOOK) every quote is checked.
RUNBOOK = Path(os.environ.get("MESHPROOF_RUNBOOK", "/work/shared/seed/runbook.md"))

DESIGN_IDS = {
    "MTLS-STRICT", "MTLS-HANDSHAKE", "XC-LATENCY", "DISCOVERY", "CP-AVAIL", "EW-FAILOVER",
    "GW-AVAIL", "CERT-RENEW", "PROXY-HEALTH", "INJECTION", "ROUTING", "CIRCUIT-BREAK",
    "INGRESS", "ALERTS", "BACKUP-RESTORE",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def test_catalog_declares_every_design_guarantee_and_more(catalog: Catalog) -> None:
    assert len(catalog) >= 15
    assert set(catalog.ids) >= DESIGN_IDS
    assert len(set(catalog.ids)) == len(catalog.ids)


def test_every_guarantee_is_complete(catalog: Catalog) -> None:
    for g in catalog:
        assert g.statement and g.sli.measure and g.sli.sources
        assert g.thresholds and g.window_s > 0
        assert g.runbook and all(r.quote for r in g.runbook)
        assert set(g.profiles) <= set(PROFILES)
        assert not (g.destructive and "nightly" in g.profiles), g.id


def test_each_profile_has_guarantees_and_nightly_is_non_destructive(catalog: Catalog) -> None:
    for profile in PROFILES:
        assert catalog.for_profile(profile)
    assert all(not g.destructive for g in catalog.for_profile("nightly"))
    assert {g.id for g in catalog.for_profile("drill")} >= {"EW-FAILOVER", "ALERTS"}


def test_get_and_iteration(catalog: Catalog) -> None:
    g = catalog.get("XC-LATENCY")
    assert g.thresholds == {"quantile": 0.95, "max_ms": 100, "min_samples": 1000}
    assert next(iter(catalog)).id == catalog.ids[0]
    assert "XC-LATENCY" in catalog and "NOPE" not in catalog
    with pytest.raises(ConfigError, match="unknown guarantee id 'NOPE'"):
        catalog.get("NOPE")
    with pytest.raises(ConfigError, match="unknown profile"):
        catalog.for_profile("weekly")


@pytest.mark.skipif(not RUNBOOK.is_file(), reason="runbook not available on this machine")
def test_runbook_quotes_are_on_the_cited_lines(catalog: Catalog) -> None:
    lines = RUNBOOK.read_text(encoding="utf-8").splitlines()

    def norm(text: str) -> str:
        return " ".join(text.split())

    refs = [(g.id, r) for g in catalog for r in g.runbook]
    refs += [(a.name, r) for a in catalog.alerts for r in a.runbook]
    for who, ref in refs:
        first, last = ref.lines
        assert last <= len(lines), who
        assert norm(ref.quote) in norm(" ".join(lines[first - 1:last])), (who, ref.lines)


def test_threshold_directions() -> None:
    assert threshold_direction("min_ratio") == "higher"
    assert threshold_direction("quantile") == "higher"
    assert threshold_direction("window_s") == "higher"
    assert threshold_direction("max_ms") == "lower"
    with pytest.raises(ValueError):
        threshold_direction("p95")


def test_no_override_gives_the_catalog_values(catalog: Catalog) -> None:
    eff = catalog.effective_thresholds("CP-AVAIL")
    assert eff["min_ratio"] == 0.999 and eff.window_s == 600 and eff.changes == ()


def test_tightening_needs_no_reason(catalog: Catalog) -> None:
    overrides = {"XC-LATENCY": ThresholdOverride(values={"max_ms": 50, "quantile": 0.99})}
    eff = catalog.effective_thresholds("XC-LATENCY", overrides)
    assert eff["max_ms"] == 50 and eff["quantile"] == 0.99
    assert eff.loosened == () and {c.name for c in eff.changes} == {"max_ms", "quantile"}


def test_loosening_without_reason_is_rejected(catalog: Catalog) -> None:
    overrides = {"XC-LATENCY": ThresholdOverride(values={"max_ms": 250})}
    with pytest.raises(OverrideRejected, match=r"thresholds\.XC-LATENCY\.max_ms: 250 loosens"):
        catalog.effective_thresholds("XC-LATENCY", overrides)
    blank = {"CP-AVAIL": ThresholdOverride(values={"min_ratio": 0.99}, reason="  ")}
    with pytest.raises(OverrideRejected, match="loosens"):
        catalog.effective_thresholds("CP-AVAIL", blank)


def test_loosening_with_reason_is_kept_for_the_report(catalog: Catalog) -> None:
    overrides = {
        "CP-AVAIL": ThresholdOverride(values={"min_ratio": 0.99, "window_s": 60}, reason="lab")
    }
    eff = catalog.effective_thresholds("CP-AVAIL", overrides)
    assert eff["min_ratio"] == 0.99 and eff.window_s == 60
    assert {(c.name, c.loosened, c.reason) for c in eff.changes} == {
        ("min_ratio", True, "lab"),
        ("window_s", True, "lab"),
    }


@pytest.mark.parametrize(
    ("gid", "values", "message"),
    [
        ("XC-LATENCYY", {"max_ms": 1}, "unknown guarantee id"),
        ("XC-LATENCY", {"max_s": 1}, "has no threshold 'max_s'"),
        ("CP-AVAIL", {"min_ratio": 1.5}, "between 0 and 1"),
        ("CP-AVAIL", {"window_s": -1}, "greater than 0"),
        ("CP-AVAIL", {"window_s": 1.5}, "whole number"),
        ("XC-LATENCY", {"max_ms": True}, "must be a number"),
        ("XC-LATENCY", {"max_ms": float("nan")}, "finite"),
        ("XC-LATENCY", {}, "overrides nothing"),
    ],
)
def test_bad_overrides_are_rejected(
    catalog: Catalog, gid: str, values: dict[str, object], message: str
) -> None:
    with pytest.raises(OverrideRejected, match=re.escape(message)):
        catalog.check_overrides({gid: ThresholdOverride(values=values, reason="r")})


def test_document_is_versioned_and_complete(catalog: Catalog) -> None:
    doc = catalog.to_document()
    assert doc["schema"] == "meshproof.catalog/v1"
    assert len(doc["guarantees"]) == len(catalog)
    assert all(g["runbook"][0]["quote"] for g in doc["guarantees"])
    assert len(doc["alerts"]) == len(catalog.alerts)


def _write_catalog(tmp_path: Path, mutate: object) -> Path:
    data = yaml.safe_load((Path(__file__).parents[2] / "src/meshproof/catalog.yaml").read_text())
    assert callable(mutate)
    mutate(data)
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["guarantees"].append(dict(d["guarantees"][0])), "declared twice: MTLS-STRICT"),
        (lambda d: d["guarantees"][0]["profiles"].append("nightly") or
         d["guarantees"][0].update(destructive=True), "destructive"),
        (lambda d: d["guarantees"][0]["thresholds"].update(p95=1), "must start with min_ or max_"),
        (lambda d: d["guarantees"][0].update(window_s=0), "greater than 0"),
        (lambda d: d["guarantees"][0].pop("runbook"), "runbook"),
        (lambda d: d["guarantees"][0].update(colour="red"), "colour"),
        (lambda d: d["alerts"][0].update(guarantee="NOPE"), "unknown guarantee NOPE"),
        (lambda d: d["alerts"][0].pop("correction"), "without a correction"),
        (lambda d: d.update(schema="meshproof.catalog/v0"), "schema"),
    ],
)
def test_a_broken_catalog_is_refused_with_one_line(
    tmp_path: Path, mutate: object, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_catalog(_write_catalog(tmp_path, mutate))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_catalog_yaml_that_does_not_parse(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text("guarantees: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_catalog(path)
