"""Export directories, kind discovery and BACKUP-RESTORE's verdict (no cluster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from meshproof.backup import (
    MESH_KINDS,
    RUNBOOK_WEEKLY_KINDS,
    GroupKind,
    MeshExport,
    ServedKind,
    compare_objects,
    discover_kinds,
    export_mesh,
    judge_backup_restore,
    parse_kinds,
    read_export,
    write_export,
)
from meshproof.catalog import load_catalog
from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.errors import ConfigError
from meshproof.sli.verdict import Verdict

NET = "networking.istio.io"
RULE: dict[str, Any] = {"apiVersion": f"{NET}/v1", "kind": "DestinationRule",
        "metadata": {"name": "helloworld", "namespace": "sample"},
        "spec": {"host": "helloworld"}}
POLICY: dict[str, Any] = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
          "metadata": {"name": "default", "namespace": "production"},
          "spec": {"mtls": {"mode": "STRICT"}}}


class _Discovery:
    """Answers GETs from a fixed table of API documents (what an API server serves)."""

    cluster = "east"

    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        self.documents = documents

    def get(self, path: str, **query: str) -> dict[str, Any]:
        if path not in self.documents:
            raise NotFoundError(f"GET {path}: HTTP 404")
        return self.documents[path]


def _server() -> ClusterApi:
    group = {"name": NET, "versions": [{"version": "v1beta1"}, {"version": "v1"}],
             "preferredVersion": {"version": "v1"}}
    served: dict[str, dict[str, Any]] = {"/apis": {"groups": [group]},
              f"/apis/{NET}/v1": {"resources": [
                  {"name": "destinationrules", "kind": "DestinationRule", "namespaced": True},
                  {"name": "destinationrules/status", "kind": "DestinationRule"}]},
              f"/apis/{NET}/v1beta1": {"resources": [
                  {"name": "destinationrules", "kind": "DestinationRule", "namespaced": True},
                  {"name": "serviceentries", "kind": "ServiceEntry", "namespaced": True}]},
              f"/apis/{NET}/v1/destinationrules": {"items": [
                  {"metadata": {**RULE["metadata"], "uid": "u", "resourceVersion": "9"},
                   "spec": RULE["spec"], "status": {"x": 1}}]},
              f"/apis/{NET}/v1beta1/serviceentries": {"items": []}}
    return cast(ClusterApi, _Discovery(served))


def test_discovery_prefers_the_preferred_version_and_names_what_is_not_served() -> None:
    served, missing = discover_kinds(_server(), MESH_KINDS)
    assert [(k.group_kind.kind, k.version, k.plural) for k in served] == [
        ("DestinationRule", "v1", "destinationrules"), ("ServiceEntry", "v1beta1",
                                                        "serviceentries")]
    assert GroupKind("security.istio.io", "PeerAuthentication") in missing
    assert len(served) + len(missing) == len(MESH_KINDS)


def test_export_strips_server_fields_and_round_trips_through_files(tmp_path: Path) -> None:
    export = export_mesh(_server())
    assert export.objects == [RULE]
    write_export(export, tmp_path)
    listed = yaml.safe_load((tmp_path / "destinationrules.networking.istio.io.yaml").read_text())
    assert listed["kind"] == "List" and listed["items"] == [RULE]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["cluster"] == "east" and {k["count"] for k in manifest["kinds"]} == {0, 1}
    back = read_export(tmp_path)
    assert back.objects == export.objects and back.kinds == export.kinds
    assert back.not_served == export.not_served
    assert compare_objects(export.objects, back.objects).identical


def test_a_narrower_backup_leaves_kinds_out() -> None:
    kind = ServedKind(GroupKind("security.istio.io", "PeerAuthentication"), "v1",
                      "peerauthentications", True)
    export = MeshExport(cluster="east", kinds=[kind], objects=[RULE, POLICY])
    weekly = export.without(gk for gk in MESH_KINDS if gk not in RUNBOOK_WEEKLY_KINDS)
    assert weekly.objects == [RULE] and weekly.kinds == []
    assert [str(d) for d in compare_objects(export.objects, weekly.objects).differences] == [
        "PeerAuthentication production/default is missing"]


@pytest.mark.parametrize(("content", "message"), [
    (None, "holds no mesh export"),
    ("{not json", "cannot be read as JSON"),
    ('{"format": 7}', "not a mesh export of format 1"),
    ('{"format": 1, "kinds": [{"group": "g"}]}', "a kind entry lacks"),
])
def test_a_broken_export_is_one_clear_error(tmp_path: Path, content: str | None,
                                            message: str) -> None:
    if content is not None:
        (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_export(tmp_path)


def test_an_export_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    write_export(export_mesh(_server()), tmp_path)
    path = tmp_path / "destinationrules.networking.istio.io.yaml"
    path.write_text(yaml.safe_dump({"kind": "List", "items": [POLICY]}))
    with pytest.raises(ConfigError, match=r"lists DestinationRule\.networking\.istio\.io only"):
        read_export(tmp_path)


def test_kinds_are_named_as_kubectl_names_them() -> None:
    assert parse_kinds(["gateway", "VirtualServices", " destinationrule"]) == RUNBOOK_WEEKLY_KINDS
    with pytest.raises(ValueError, match="not a mesh configuration kind: secrets"):
        parse_kinds(["gateway", "secrets"])


def test_verdict_holds_only_when_every_object_is_equal_and_traffic_answers() -> None:
    thresholds = load_catalog().effective_thresholds("BACKUP-RESTORE", {})
    equal = {"east": compare_objects([RULE, POLICY], [RULE, POLICY])}
    lost = {"east": compare_objects([RULE, POLICY], [RULE])}
    added = {"east": compare_objects([RULE], [RULE, POLICY])}
    assert judge_backup_restore(equal, (20, 20), thresholds).verdict is Verdict.HELD
    violated = judge_backup_restore(lost, (20, 20), thresholds)
    assert violated.verdict is Verdict.VIOLATED
    assert "1 of 2" in violated.reason
    assert "PeerAuthentication production/default is missing" in violated.reason
    assert violated.evidence["config.differences"] == [
        "east: PeerAuthentication production/default is missing"]
    assert judge_backup_restore(added, (20, 20), thresholds).verdict is Verdict.VIOLATED
    slow = judge_backup_restore(equal, (19, 20), thresholds)
    assert slow.verdict is Verdict.VIOLATED and "after the restore" in slow.reason
    assert judge_backup_restore(equal, None, thresholds).verdict is Verdict.NOT_MEASURABLE
    assert judge_backup_restore({}, (20, 20), thresholds).verdict is Verdict.NOT_MEASURABLE
