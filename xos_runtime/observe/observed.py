"""What the observer reads of the host (`xos_runtime.host.Runtime` is one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import networkx as nx  # type: ignore[import-untyped,unused-ignore]

from xos_runtime.config import Settings
from xos_runtime.store import ModelAccessor

__all__ = ["ObservedHost"]


class ObservedHost(Protocol):
    """What the observer reads of the host (`xos_runtime.host.Runtime`)."""

    settings: Settings
    accessor: ModelAccessor
    graph: nx.DiGraph
    clock: Callable[[], float]

    def abandoned_calls(self) -> dict[str, int]:
        """Calls abandoned after a timeout that still run, by engine name."""
        ...

    def claims_held(self) -> dict[str, int]:
        """The claims this process holds on a shared store, by engine kind."""
        ...
