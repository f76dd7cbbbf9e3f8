"""The lab Consul server keeps its catalog in the StatefulSet's volume, wherever the lab dir is."""

from __future__ import annotations

from pathlib import Path

from meshproof.lab.consul.server import config_from
from meshproof.lab.images.context import ContainerContext
from meshproof.lab.kube.kubelet.launch import map_args


def context(tmp_path: Path) -> ContainerContext:
    # A lab dir under /tmp (as in CI): the PVC's host dir starts with the container's /tmp.
    mounts = {"/consul/data": str(tmp_path / "pvc" / "data-consul-consul-server-0"),
              "/tmp": str(tmp_path / "pods" / "consul-server-0" / "tmp" / "consul")}
    script = "exec /usr/local/bin/consul agent \\\n  -data-dir=/consul/data \\\n  -server"
    return ContainerContext(
        cluster="aws-eks", namespace="consul", pod="consul-server-0",
        container={"name": "consul"}, argv=map_args(["/bin/sh", "-ec", script], mounts),
        env={}, pod_ip="127.1.0.9", host_ip="127.0.0.1",
        pod_dir=str(tmp_path / "pods" / "consul-server-0"), mounts=mounts)


def test_the_data_dir_is_the_volume_not_the_pods_tmp(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    assert "-data-dir=" + ctx.mounts["/consul/data"] in ctx.argv[2]  # the kubelet mapped it
    assert config_from(ctx).data_dir == Path(ctx.mounts["/consul/data"])


def test_an_unmapped_container_path_is_still_mapped(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    ctx.argv = ["/bin/sh", "-ec", "exec consul agent -data-dir=/consul/data -server"]
    assert config_from(ctx).data_dir == Path(ctx.mounts["/consul/data"])
