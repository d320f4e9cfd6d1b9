"""Which event bus the config's `event_bus` section names, opened.

Apart from the bus protocols (`bus.py`) so that neither bus imports the other and Kafka's
client is imported only when the config asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xos_runtime.engines.events.bus import EventBus
from xos_runtime.engines.events.memory import MemoryBus
from xos_runtime.engines.events.storebus import StoreBus
from xos_runtime.store import ModelAccessor

if TYPE_CHECKING:
    from xos_runtime.config import EventBusSettings
    from xos_runtime.store.remote import RemoteAccessor

__all__ = ["open_event_bus"]


def open_event_bus(
    settings: EventBusSettings,
    client_id: str = "xos-runtime",
    accessor: ModelAccessor | RemoteAccessor | None = None,
) -> EventBus:
    """The bus the config's `event_bus` section names for a runtime over `accessor`.

    ``kafka``: a `KafkaBus`. ``store`` (and its alias ``memory``): the log of the
    accessor's store, a `StoreBus` on a local store, or a `RemoteBus` over the core of a
    remote accessor (the core's own store's log, shared with its processes). Without an
    accessor, a new in-process `MemoryBus` stands in for the store's (for tests and tools
    that have none)."""
    if settings.kind == "kafka":
        from xos_runtime.engines.events.kafka import KafkaBus  # kafka-python only when asked for

        return KafkaBus(settings.servers, client_id=client_id)
    if accessor is None:
        return MemoryBus()
    if isinstance(accessor, ModelAccessor):
        return StoreBus(accessor.store, retention=settings.retention)
    from xos_runtime.engines.events.remotebus import RemoteBus  # requests: a remote store only

    return RemoteBus(accessor.store.client)
