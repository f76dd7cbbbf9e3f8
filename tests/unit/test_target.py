"""Target files through the library: good ones load, every malformed one is one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshproof.catalog import load_catalog
from meshproof.errors import TargetError
from meshproof.target import Target, lab_target_path, load_target
from tests.support.targets import GOOD_TARGETS, TARGETS_DIR, BadTarget, bad_targets

BAD = bad_targets()
TOKEN = (TARGETS_DIR / "files" / "prometheus.token").read_text().strip()


def test_the_malformed_corpus_is_large_enough() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize("path", GOOD_TARGETS, ids=lambda p: p.stem)
def test_good_targets_load(path: Path) -> None:
    target = load_target(path)
    assert isinstance(target, Target)
    assert target.source == path.resolve()
    assert target.clusters and target.namespaces


@pytest.mark.parametrize("bad", BAD, ids=lambda b: b.path.stem)
def test_malformed_target_is_one_line_naming_file_field_and_fix(bad: BadTarget) -> None:
    with pytest.raises(TargetError) as info:
        load_target(bad.path)
    message = str(info.value)
    assert message.startswith(str(bad.path.resolve())), message
    assert bad.expect in message, f"{bad.why}: {message}"
    assert "\n" not in message
    assert TOKEN not in message and "s3cr3t-inline-token" not in message


def test_staging_target_reads_as_written() -> None:
    target = load_target(TARGETS_DIR / "good" / "staging.yaml")
    assert target.cluster_names == ("aws-eks", "gcp-gke")
    aws = target.cluster("aws-eks")
    assert aws.kubeconfig == (TARGETS_DIR / "files" / "kubeconfig").resolve()
    assert aws.prometheus is not None and aws.prometheus.ca_file is not None
    assert aws.consul is not None and aws.consul.port == 8500
    assert target.cluster("gcp-gke").consul is None
    assert target.cluster("gcp-gke").prometheus is not None
    assert target.cluster("gcp-gke").prometheus.url == "https://prometheus.gcp.staging.example.com:9443"
    assert target.allows("aws-eks", "istiod-down")
    assert not target.allows("gcp-gke", "istiod-down")
    assert not target.allows("nowhere", "istiod-down")
    assert target.resolved_timeouts.pod_ready == 60 and target.resolved_timeouts.rollout == 240
    with pytest.raises(KeyError):
        target.cluster("azure")


def test_overrides_apply_and_loosening_keeps_its_reason() -> None:
    target = load_target(TARGETS_DIR / "good" / "staging.yaml")
    catalog = load_catalog()
    latency = target.effective_thresholds(catalog, "XC-LATENCY")
    assert latency["max_ms"] == 50 and latency.loosened == ()
    availability = target.effective_thresholds(catalog, "CP-AVAIL")
    assert availability.window_s == 120
    (change,) = availability.loosened
    assert change.name == "window_s" and change.reason and "30-minute" in change.reason
    untouched = target.effective_thresholds(catalog, "ROUTING")
    assert untouched.changes == ()


def test_bearer_token_is_read_but_never_printed() -> None:
    target = load_target(TARGETS_DIR / "good" / "staging.yaml")
    prometheus = target.cluster("aws-eks").prometheus
    assert prometheus is not None and prometheus.bearer_token is not None
    assert prometheus.bearer_token.get_secret_value() == TOKEN
    for text in (repr(target), str(target), target.model_dump_json(), repr(prometheus)):
        assert TOKEN not in text


def test_defaults_when_optional_sections_are_absent() -> None:
    target = load_target(TARGETS_DIR / "good" / "minimal.yaml")
    assert target.destructive.allowed == {}
    assert target.thresholds == {} and target.probe.image is None
    assert target.cluster("aws-eks").prometheus is None


def test_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no such target file; check the path"):
        load_target(tmp_path / "nope.yaml")


def test_a_directory(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="is a directory, not a target file"):
        load_target(tmp_path)


def test_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.yaml"
    path.write_text("name: x\n")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user that can read any file")
        with pytest.raises(TargetError, match="cannot be read"):
            load_target(path)
    finally:
        path.chmod(0o600)


def test_relative_paths_start_at_the_target_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("abc\n")
    (tmp_path / "t.yaml").write_text(
        "name: rel\nnamespaces: [sample]\nclusters:\n  - name: one\n    context: one\n"
        "    network: n1\n    prometheus: {url: 'http://127.0.0.1:9', bearer_token_file: secrets/token}\n"
    )
    monkeypatch.chdir("/")
    target = load_target(tmp_path / "t.yaml")
    prometheus = target.cluster("one").prometheus
    assert prometheus is not None
    assert prometheus.bearer_token_file == (tmp_path / "secrets" / "token").resolve()


def test_lab_resolves_to_the_lab_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHPROOF_LAB_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert lab_target_path() == tmp_path / ".meshproof" / "lab" / "target.yaml"
    with pytest.raises(TargetError, match="meshproof lab up"):
        load_target("lab")

    lab_dir = tmp_path / "elsewhere"
    lab_dir.mkdir()
    (lab_dir / "kubeconfig").write_bytes((TARGETS_DIR / "files" / "kubeconfig").read_bytes())
    (lab_dir / "target.yaml").write_text(
        "name: lab\nnamespaces: [sample]\nclusters:\n"
        "  - {name: aws-eks, context: aws-eks, kubeconfig: kubeconfig, network: network1, prometheus: null}\n"
        "  - {name: gcp-gke, context: gcp-gke, kubeconfig: kubeconfig, network: network2, prometheus: null}\n"
    )
    monkeypatch.setenv("MESHPROOF_LAB_DIR", str(lab_dir))
    target = load_target("lab")
    assert target.name == "lab" and target.source == lab_dir / "target.yaml"
    assert target.cluster_names == ("aws-eks", "gcp-gke")


def test_every_problem_is_reported_as_target_error_not_a_crash(tmp_path: Path) -> None:
    # Shapes no corpus file has: mapping keys that are not strings, deep nesting of wrong types.
    cases = {
        "int-keys.yaml": "1: x\n2: y\n",
        "nested.yaml": "name: x\nnamespaces: [a]\nclusters: [[1, 2]]\n",
        "services.yaml": "name: x\nnamespaces: [a]\nclusters: [{name: c, context: c, network: n, "
        "prometheus: null}]\nservices: [web]\n",
        "probe.yaml": "name: x\nnamespaces: [a]\nclusters: [{name: c, context: c, network: n, "
        "prometheus: null}]\nprobe: python\n",
    }
    for name, body in cases.items():
        path = tmp_path / name
        path.write_text(body)
        with pytest.raises(TargetError) as info:
            load_target(path)
        assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_the_target_file_the_lab_writes_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Contract with meshproof.lab.state: `meshproof lab up` writes what `--target lab` reads.
    state = pytest.importorskip("meshproof.lab.state")
    clusters = [
        state.ClusterEndpoint("aws-eks", "https://127.0.0.1:1", "tok-aws", b"pem", "network1"),
        state.ClusterEndpoint("gcp-gke", "https://127.0.0.1:2", "tok-gcp", b"pem", "network2"),
    ]
    state.write_kubeconfig(tmp_path / "kubeconfig", clusters)
    (tmp_path / "aws-eks.token").write_text("tok-aws\n")
    state.write_target(
        tmp_path / "target.yaml", clusters,
        prometheus={"aws-eks": {"url": "https://127.0.0.1:1/prometheus",
                                "bearer_token_file": "aws-eks.token"}},
        consul=True,
    )
    monkeypatch.setenv("MESHPROOF_LAB_DIR", str(tmp_path))
    target = load_target("lab")
    assert target.cluster_names == ("aws-eks", "gcp-gke")
    assert target.cluster("gcp-gke").prometheus is None
    assert target.cluster("aws-eks").consul is not None
    assert target.strict_namespaces == ["production"]
    assert "tok-aws" not in repr(target)
