"""Pure parts of the lab runtime: image lookup, path mapping, argv, fenceposts, addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshproof.errors import LabError
from meshproof.lab import images
from meshproof.lab.images import Program, lookup, register_image, repository_of
from meshproof.lab.images.context import map_path
from meshproof.lab.kube.controllers.deployments import resolve_fenceposts, template_hash
from meshproof.lab.kube.kubelet.ipam import AddressPool
from meshproof.lab.kube.kubelet.launch import container_argv, map_args, resolve_executable
from meshproof.lab.kube.kubelet.volumes import expand_vars


@pytest.mark.parametrize(
    "image,repo",
    [
        ("python:3.12-slim", "python"),
        ("docker.io/library/busybox:1.36", "busybox"),
        ("docker.io/istio/proxyv2:1.31.0", "istio/proxyv2"),
        ("registry.k8s.io/pause:3.10", "pause"),
        ("localhost:5000/x/y@sha256:abc", "x/y"),
        ("curlimages/curl", "curlimages/curl"),
    ],
)
def test_repository_of_strips_registry_tag_and_library(image: str, repo: str) -> None:
    assert repository_of(image) == repo


def test_lookup_prefers_the_longest_prefix_and_unknown_is_none() -> None:
    images.load_registrations()
    register_image("example/app", Program(default_command=("a",)))
    register_image("example/app-v2", Program(default_command=("b",)))
    assert lookup("quay.io/example/app:1") == Program(default_command=("a",))
    assert lookup("example/app-v2:7") == Program(default_command=("b",))
    assert lookup("example/app-other:1") == Program(default_command=("a",))
    assert lookup("nobody/knows:1") is None
    assert lookup("python:3.11-slim") is not None


@pytest.mark.parametrize("image", [
    "docker.io/istio/examples-helloworld-v1:1.0",
    "registry.istio.io/release/examples-helloworld-v1:1.0",
    "gcr.io/istio-release/examples-helloworld-v1:1.0",
    "registry.istio.io/testing/examples-helloworld-v1:latest",
    "Registry.Istio.io/release/examples-helloworld-v1",
])
def test_istio_images_are_one_repository_on_every_hub(image: str) -> None:
    """istio/istio publishes each image on several hubs: ``registry.istio.io/release`` is the
    default and the samples' since 1.30 (PR #59364; ``samples/helloworld/helloworld.yaml``),
    ``docker.io/istio`` before, ``gcr.io/istio-release`` for older releases, and dev builds on
    ``registry.istio.io/testing``. Each name finds the one program."""
    images.load_registrations()
    assert lookup(image) is not None
    assert lookup(image) == lookup("docker.io/istio/examples-helloworld-v1:1.0")


def test_other_registries_keep_their_own_repositories() -> None:
    images.load_registrations()
    assert lookup("registry.example.com/release/examples-helloworld-v1:1.0") is None
    assert lookup("gcr.io/someone-else/examples-helloworld-v1:1.0") is None
    assert lookup("registry.istio.io/release/no-such-sample:1.0") is None


def test_map_path_uses_the_longest_mount() -> None:
    mounts = {"/etc/app": "/lab/v/cfg", "/etc/app/certs": "/lab/v/certs"}
    assert map_path("/etc/app/config.yaml", mounts) == "/lab/v/cfg/config.yaml"
    assert map_path("/etc/app/certs/ca.pem", mounts) == "/lab/v/certs/ca.pem"
    assert map_path("/etc/application", mounts) == "/etc/application"
    assert map_path("/etc/app", mounts) == "/lab/v/cfg"


def test_map_args_rewrites_paths_inside_shell_strings() -> None:
    mounts = {"/app": "/lab/p/volumes/code"}
    assert map_args(
        ["python", "/app/agent.py", "--x=/app/y", "sh -c 'cat /app/z'", "/apple"], mounts
    ) == [
        "python",
        "/lab/p/volumes/code/agent.py",
        "--x=/lab/p/volumes/code/y",
        "sh -c 'cat /lab/p/volumes/code/z'",
        "/apple",
    ]


def test_expand_vars_like_kubernetes() -> None:
    env = {"A": "1", "POD_IP": "127.1.0.9"}
    assert expand_vars("$(A)-$(POD_IP)", env) == "1-127.1.0.9"
    assert expand_vars("$(MISSING)", env) == "$(MISSING)"
    assert expand_vars("$$(A)", env) == "$(A)"


def test_container_argv_combines_command_args_and_entrypoint() -> None:
    curl = Program(default_command=("curl",), entrypoint=("curl",))
    assert container_argv({"args": ["-s", "$(URL)"]}, curl, {"URL": "http://x"}) == [
        "curl",
        "-s",
        "http://x",
    ]
    assert container_argv({"command": ["sleep"], "args": ["5"]}, curl, {}) == ["sleep", "5"]
    assert container_argv({}, curl, {}) == ["curl"]


def test_resolve_executable_only_finds_the_image_commands(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to("/bin/sh")
    assert resolve_executable("sh", bin_dir=bin_dir, mounts={}) == str(bin_dir / "sh")
    assert resolve_executable("/usr/local/bin/sh", bin_dir=bin_dir, mounts={}) == str(
        bin_dir / "sh"
    )
    assert resolve_executable("curl", bin_dir=bin_dir, mounts={}) is None
    script = tmp_path / "v" / "run.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    assert resolve_executable(
        "/scripts/run.sh", bin_dir=bin_dir, mounts={"/scripts": str(script.parent)}
    ) == str(script)


@pytest.mark.parametrize(
    "replicas,strategy,expected",
    [
        (1, {}, (1, 0)),
        (4, {}, (1, 1)),
        (10, {}, (3, 2)),
        (3, {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}, (0, 1)),
        (5, {"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 2}}, (3, 2)),
    ],
)
def test_rolling_update_fenceposts(
    replicas: int, strategy: dict[str, object], expected: tuple[int, int]
) -> None:
    assert resolve_fenceposts(replicas, strategy) == expected


def test_template_hash_ignores_its_own_label_and_changes_with_the_template() -> None:
    t = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c"}]}}
    labelled = {"metadata": {"labels": {"app": "a", "pod-template-hash": "x"}}, "spec": t["spec"]}
    assert template_hash(t) == template_hash(labelled)
    restarted = {"metadata": {"labels": {"app": "a"}, "annotations": {"r": "1"}}, "spec": t["spec"]}
    assert template_hash(t) != template_hash(restarted)
    assert set(template_hash(t)) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_address_pool_allocates_round_robin_and_refuses_taken() -> None:
    pool = AddressPool("127.1", reserved=("127.1.0.1",))
    a, b = pool.allocate(), pool.allocate()
    assert (a, b) == ("127.1.0.2", "127.1.0.3")
    pool.release(a)
    assert pool.allocate() == "127.1.0.4"
    with pytest.raises(LabError):
        pool.allocate("127.1.0.3")


def test_service_account_tokens_are_checked_by_signature_audience_and_expiry() -> None:
    from meshproof.lab.kube.kubelet.tokens import TokenIssuer

    now = [1000.0]
    issuer = TokenIssuer("aws-eks", clock=lambda: now[0])
    token = issuer.issue("sample", "curl", seconds=600)
    assert issuer.authenticate(token) == "system:serviceaccount:sample:curl"
    assert issuer.issue("sample", "curl", seconds=600) == token  # reused until 80 %
    assert issuer.authenticate(issuer.issue("sample", "curl", audience="istio-ca")) is None
    assert TokenIssuer("gcp-gke").authenticate(token) is None
    assert issuer.authenticate(token[:-2] + "xx") is None
    now[0] += 500
    assert issuer.issue("sample", "curl", seconds=600) != token  # renewed past 80 %
    now[0] += 200
    assert issuer.authenticate(token) is None


def test_volume_files_are_swapped_atomically(tmp_path: Path) -> None:
    from meshproof.lab.kube.kubelet.volumes import write_atomically

    root = tmp_path / "cfg"
    assert write_atomically(root, {"a": b"1", "dir/b": b"2"})
    assert (root / "a").read_bytes() == b"1" and (root / "dir" / "b").read_bytes() == b"2"
    assert not write_atomically(root, {"a": b"1", "dir/b": b"2"})
    assert write_atomically(root, {"a": b"3"})
    assert (root / "a").read_bytes() == b"3" and not (root / "dir").exists()
    assert len([p for p in root.iterdir() if p.name.startswith("..2")]) == 1


def test_exec_with_a_tty_runs_on_a_pseudo_terminal(tmp_path: Path) -> None:
    import asyncio
    import shutil

    from meshproof.lab.kube.kubelet.execs import spawn_exec

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for cmd in ("sh", "tty"):
        (bin_dir / cmd).symlink_to(shutil.which(cmd) or f"/usr/bin/{cmd}")

    async def run(tty: bool) -> tuple[str, int]:
        session = await spawn_exec(["sh", "-c", "tty; exit 5"], env={"PATH": str(bin_dir)},
                                   cwd=str(tmp_path), bin_dir=bin_dir, mounts={}, tty=tty)
        out = b"".join([chunk async for chunk in session.stdout])
        return out.decode(), await asyncio.wait_for(session.wait(), 10)

    out, code = asyncio.run(run(True))
    assert out.startswith("/dev/pts/") and code == 5
    out, code = asyncio.run(run(False))
    assert out.strip() == "not a tty" and code == 5
