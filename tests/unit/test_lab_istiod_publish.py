"""The lab istiod's root-cert publisher: a new namespace gets ``istio-ca-root-cert`` when
istiod's cache sees it, as istiod's NamespaceController reconciles on the namespace's add
event (istio/istio pilot/pkg/serviceregistry/kube/controller/namespacecontroller.go), not on
the next periodic pass."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from meshproof.lab.istiod import program


class FakeDiscovery:
    def __init__(self, names: list[str]) -> None:
        self.items = [{"metadata": {"name": n}} for n in names]
        self.generation = 0
        self._pushed = asyncio.Condition()

    def namespaces(self) -> list[dict[str, Any]]:
        return list(self.items)

    async def add(self, name: str) -> None:
        self.items.append({"metadata": {"name": name}})
        async with self._pushed:
            self.generation += 1
            self._pushed.notify_all()

    async def pushed_after(self, generation: int, timeout: float) -> int:
        async with self._pushed:
            try:
                await asyncio.wait_for(
                    self._pushed.wait_for(lambda: self.generation != generation), timeout)
            except TimeoutError:
                pass
        return self.generation


class FakeWriter:
    def __init__(self) -> None:
        self.configmaps: list[str] = []
        self.webhooks = 0
        self.changed = asyncio.Event()

    async def apply_configmap(self, namespace: str, name: str, data: dict[str, str],
                              labels: dict[str, str]) -> None:
        assert name == "istio-ca-root-cert" and labels == {"istio.io/config": "true"}
        self.configmaps.append(namespace)
        self.changed.set()

    async def patch_webhook_ca(self, name: str, ca_pem: str) -> bool:
        self.webhooks += 1
        return True


class FakeCA:
    root_bundle_pem = "ROOT"


async def _written(writer: FakeWriter, namespace: str) -> None:
    while namespace not in writer.configmaps:
        writer.changed.clear()
        await writer.changed.wait()


def test_a_new_namespace_gets_the_root_cert_without_waiting_for_the_periodic_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(program, "PUBLISH_EVERY", 3600.0)  # no second periodic pass here

    async def go() -> tuple[list[str], int]:
        discovery, writer = FakeDiscovery(["default"]), FakeWriter()
        task = asyncio.create_task(program._publish(
            discovery, writer, FakeCA(), lambda line: None))  # type: ignore[arg-type]
        try:
            await asyncio.wait_for(_written(writer, "default"), 10)
            await discovery.add("probe-run")
            await asyncio.wait_for(_written(writer, "probe-run"), 10)
        finally:
            task.cancel()
        return writer.configmaps, writer.webhooks

    configmaps, webhooks = asyncio.run(go())
    # The first pass wrote every namespace and the webhook; the event wrote only the new one.
    assert configmaps == ["default", "probe-run"]
    assert webhooks == 1
