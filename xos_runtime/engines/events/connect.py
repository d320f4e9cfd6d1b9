"""Which event bus the config's `event_bus` section names, opened.

Apart from the bus protocols (`bus.py`) so that neither bus imports the other and Kafka's
client is imported only when the config asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xos_runtime.engines.events.bus import EventBus
from xos_runtime.engines.events.memory import MemoryBus
from xos_runtime.engines.events.storebus import StoreBus

if TYPE_CHECKING:
    from xos_runtime.config import EventBusSettings
    from xos_runtime.store import SqlStore

__all__ = ["open_event_bus"]


def open_event_bus(
    settings: EventBusSettings, client_id: str = "xos-runtime", store: SqlStore | None = None
) -> EventBus:
    """The bus the config's `event_bus` section names: a `StoreBus` in `store` (``store``,
    and its alias ``memory``), or a `KafkaBus`. Without a store, a new in-process
    `MemoryBus` stands in for the store's (for tests and tools that have none)."""
    if settings.kind == "kafka":
        from xos_runtime.engines.events.kafka import KafkaBus  # kafka-python only when asked for

        return KafkaBus(settings.servers, client_id=client_id)
    if store is None:
        return MemoryBus()
    return StoreBus(store, retention=settings.retention)
