"""The faces every accessor shows the engines, local or over a core, checked by mypy.

The host hands the engines either a `ModelAccessor` (a database) or a `RemoteAccessor` (a
core over HTTP). What they read and store through it must mean the same on both, so its
parts are written down here once as protocols, and mypy checks both accessors against them
(the `TYPE_CHECKING` block at the end). Leases, claims and outcome batches are not here:
each accessor pairs them with its own kind (`Lease` and `Claims` over a database,
`CoreLease` and `CoreClaims` over a core), which the fault tests exercise on both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Container, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from xos_runtime.models.definitions import ModelSet
from xos_runtime.store.attempts import Attempts, MessageKey, PartitionKey
from xos_runtime.store.claims import HeldClaims
from xos_runtime.store.objects import ModelObject

__all__ = ["AttemptsFace", "ChangesFace", "EngineReads", "ScheduleFace"]


class ChangesFace(Protocol):
    """A subscription to the store's changes (`subscribe()`)."""

    def wait(self, timeout: float | None = None) -> set[str] | None: ...

    def close(self) -> None: ...


class ScheduleFace(Protocol):
    """The shared schedule of the pull steps' interval jobs (`schedule(owner)`)."""

    def take(self, job: str, now: float, interval: float) -> bool: ...


class AttemptsFace(Protocol):
    """The failed calls of one consumer group's messages (`event_attempts(group)`)."""

    def failed(self, message: MessageKey, error: str, next_run: float) -> int: ...

    def load(self, spans: Mapping[PartitionKey, tuple[int, int]]) -> dict[MessageKey, Attempts]: ...

    def forget(self, committed: Mapping[PartitionKey, int]) -> None: ...


class EngineReads(Protocol):
    """What the engines and the host read through an accessor, and the bookkeeping that
    needs no claims: the same on a database and over a core."""

    @property
    def models(self) -> ModelSet: ...

    @property
    def shared(self) -> bool: ...

    def get_model_class(self, name: str) -> type[ModelObject]: ...

    def has_model_class(self, name: str) -> bool: ...

    def subscribe(self) -> ChangesFace: ...

    def snapshot(self) -> contextlib.AbstractContextManager[None]: ...

    def fetch_pending(self, model_names: Iterable[str], deleted: bool = False) -> list[Any]: ...

    def fetch_policy_pending(
        self, model_names: Iterable[str], deleted: bool = False
    ) -> list[Any]: ...

    def fetch_policy_work(
        self, model_names: Iterable[str], only: Mapping[str, Container[int]] | None = None
    ) -> tuple[list[Any], list[tuple[str, int]]]: ...

    def load_rows(
        self, keys: Iterable[tuple[str, int]], conn: Any = None, columns: Sequence[str] = ()
    ) -> dict[tuple[str, int], dict[str, Any]]: ...

    def schedule(self, owner: str) -> ScheduleFace: ...

    def event_attempts(self, group: str) -> AttemptsFace: ...

    def held_claims(self) -> list[HeldClaims]: ...

    def count_with_code(self, code: int) -> int: ...

    def publish_event(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int] | None: ...

    def check_db_connection_okay(self) -> bool: ...

    def close(self) -> None: ...


if TYPE_CHECKING:
    from xos_runtime.store.accessor import ModelAccessor
    from xos_runtime.store.remote.accessor import RemoteAccessor

    def _local(accessor: ModelAccessor) -> EngineReads:
        """Where mypy checks that a local accessor shows the engines' face."""
        return accessor

    def _remote(accessor: RemoteAccessor) -> EngineReads:
        """Where mypy checks that an accessor over a core shows the same face."""
        return accessor
