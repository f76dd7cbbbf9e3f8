"""The seams between the lab's API server, its controllers and its kubelet.

The API server owns the objects (``ObjectStore``); controllers and the kubelet
run in the same process and read and write through that store, so what they do
is seen by clients exactly like a real controller's writes. The API server
reaches running pods (exec, logs) through a ``PodRuntime`` the kubelet provides,
and lets admission hooks (sidecar injection, defaulting) change objects before
they are stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

__all__ = [
    "ResourceKind",
    "WatchEvent",
    "ObjectStore",
    "ExecSession",
    "PodRuntime",
    "AdmissionHook",
    "Conflict",
    "NotFound",
    "AlreadyExists",
    "Invalid",
]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """One served resource, e.g. group "apps", version "v1", plural "deployments"."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()  # "status", "scale", "exec", "log", "proxy", "eviction"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
    object: Obj


class StoreError(Exception):
    """Base of the store's errors; the API server turns them into ``Status`` objects."""

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = dict(details or {})


class NotFound(StoreError):
    """404, reason NotFound."""


class AlreadyExists(StoreError):
    """409, reason AlreadyExists."""


class Conflict(StoreError):
    """409, reason Conflict (stale resourceVersion)."""


class Invalid(StoreError):
    """422, reason Invalid."""


class ObjectStore(Protocol):
    """All objects of one cluster. Objects go in and come out as plain JSON dicts."""

    cluster: str

    def kind_for(self, api_version: str, kind: str) -> ResourceKind:
        """The served resource for an apiVersion/kind pair (raises ``NotFound``)."""

    async def create(self, res: ResourceKind, obj: Obj, *, namespace: str | None) -> Obj: ...

    async def get(self, res: ResourceKind, name: str, *, namespace: str | None) -> Obj: ...

    async def list(
        self,
        res: ResourceKind,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[Obj], str]:
        """Matching objects and the list's resourceVersion."""

    async def update(self, res: ResourceKind, obj: Obj, *, subresource: str = "") -> Obj:
        """Replace (optimistic on ``metadata.resourceVersion`` when given)."""

    async def mutate(
        self,
        res: ResourceKind,
        name: str,
        change: Callable[[Obj], Obj | None],
        *,
        namespace: str | None,
        subresource: str = "",
    ) -> Obj:
        """Read-modify-write without a conflict: ``change`` gets a copy and returns the new
        object (or mutates the copy and returns None). Used by controllers and the kubelet."""

    async def delete(
        self,
        res: ResourceKind,
        name: str,
        *,
        namespace: str | None,
        grace_period_seconds: int | None = None,
    ) -> Obj:
        """Pods with a grace period get ``deletionTimestamp`` and stay until the kubelet
        ``finalize``s them; everything else goes at once. Returns the object."""

    async def finalize(self, res: ResourceKind, name: str, *, namespace: str | None) -> None:
        """Remove an object for good (the kubelet, when a deleted pod has stopped)."""

    def watch(
        self,
        res: ResourceKind,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
    ) -> AsyncIterator[WatchEvent]:
        """Events after ``resource_version`` (all current objects as ADDED when empty)."""

    def add_admission_hook(self, hook: AdmissionHook) -> None: ...

    async def record_event(
        self, involved: Obj, *, reason: str, message: str, type_: str = "Normal"
    ) -> None:
        """Create a core/v1 Event about ``involved`` (kubectl get events shows it)."""


AdmissionHook = Callable[[ResourceKind, str, Obj], Awaitable[Obj]]
"""Called as hook(resource, operation "CREATE"|"UPDATE", object) before an object is
stored; returns the (possibly changed) object or raises ``Invalid`` to refuse it."""


@dataclass(slots=True)
class ExecSession:
    """A command running in a pod's container; the API server pumps it over the websocket."""

    stdout: AsyncIterator[bytes]
    stderr: AsyncIterator[bytes]
    write_stdin: Callable[[bytes], Awaitable[None]]
    close_stdin: Callable[[], Awaitable[None]]
    wait: Callable[[], Awaitable[int]]  # exit code
    kill: Callable[[], Awaitable[None]]
    extra: dict[str, Any] = field(default_factory=dict)


class PodRuntime(Protocol):
    """What the kubelet offers the API server about running pods."""

    async def exec(
        self,
        namespace: str,
        pod: str,
        container: str,
        command: Sequence[str],
        *,
        stdin: bool = False,
        tty: bool = False,
    ) -> ExecSession:
        """Start ``command`` in the container's environment. Raises ``NotFound`` for an unknown
        pod/container, ``Invalid`` when the pod is not running."""

    def log_path(self, namespace: str, pod: str, container: str, *, previous: bool = False) -> Path:
        """The file holding the container's stdout+stderr (raises ``NotFound``)."""

    def pod_address(self, namespace: str, pod: str) -> str:
        """The pod's IP (its loopback address), for ``pods/proxy`` (raises ``NotFound``)."""
