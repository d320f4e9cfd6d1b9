"""`xoskafka.XOSKafkaProducer`: XOS's producer, onto xos-runtime's configured event bus.

`init()` checks that a runtime is bound; `produce(topic, key, value)` publishes on the bus the
config's `event_bus` names (Kafka, or the in-memory bus), text encoded as UTF-8.
"""

from __future__ import annotations

from typing import Any

from xos_runtime_xos_compat.binding import bound_runtime

__all__ = ["XOSKafkaProducer"]


def _bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


class XOSKafkaProducer:
    """Class-level producer, as in XOS: `XOSKafkaProducer.init()`, then `produce(...)`."""

    @classmethod
    def init(cls) -> None:
        """Nothing to open: the runtime owns the bus. Kept for XOS entry scripts."""

    @classmethod
    def produce(cls, topic: str, key: Any, value: Any) -> None:
        """Send one message to `topic` on the runtime's event bus."""
        runtime = bound_runtime()
        if runtime is None:
            raise RuntimeError(
                "XOSKafkaProducer.produce: no running xos-runtime (the event bus is the "
                "runtime's; produce from a step or policy)"
            )
        runtime.event_bus.publish(topic, _bytes(key), _bytes(value))
