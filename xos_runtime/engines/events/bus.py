"""The event bus as the event engine sees it: the `EventBus` and `Consumer` protocols.

A bus hands out one `Consumer` per consumer group and subscription. The event engine gives
every event step a group of its own, so two steps on one topic both see every message (the
original shared one group between all steps, reference 8.C4). Offsets are committed by the
engine, never automatically: a message counts as consumed only once its handler returned.

The buses are `StoreBus` (`storebus.py`, the embedded one, in the store), `MemoryBus`
(`memory.py`, in-process) and `KafkaBus` (`kafka.py`); each imports this module and none
another. `connect.py` opens the one the config names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs

from xos_runtime.steps import Event

__all__ = ["Consumer", "EventBus", "Subscription", "TopicPartition", "to_bytes"]

#: `(topic, partition)`
TopicPartition = tuple[str, int]


@attrs.frozen
class Subscription:
    """What a consumer reads: a list of topic names, or the topics a regular expression matches."""

    topics: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    @classmethod
    def of(cls, topics: Iterable[str] | None = None, pattern: str | None = None) -> Subscription:
        return cls(tuple(topics or ()), re.compile(pattern) if pattern else None)

    def matches(self, topic: str) -> bool:
        if self.pattern is not None:
            return self.pattern.fullmatch(topic) is not None
        return topic in self.topics

    def __str__(self) -> str:
        return (
            f"pattern {self.pattern.pattern!r}" if self.pattern else f"topics {list(self.topics)}"
        )


class Consumer(Protocol):
    """One member of a consumer group. Used by one thread at a time."""

    def poll(self, timeout: float) -> list[Event]:
        """The next messages of the assigned, unpaused partitions, in offset order per
        partition; waits up to `timeout` seconds for some to arrive (0: none waiting)."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record for the group that each partition is consumed up to (excluding) `offset`."""
        ...

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make the next `poll` of `tp` start at `offset` again."""
        ...

    def pause(self, tp: TopicPartition) -> None:
        """Stop fetching `tp` until `resume` (a no-op for a partition not assigned)."""
        ...

    def resume(self, tp: TopicPartition) -> None: ...

    def wakeup(self) -> None:
        """Make a `poll` that is waiting (in another thread) return at once, if it can."""
        ...

    def close(self) -> None:
        """Leave the group; commits nothing."""
        ...


class EventBus(Protocol):
    """Where event steps' messages come from (`event_bus.kind` in the config)."""

    #: Seconds a pass (`--once`, `--until-idle`) waits for messages that are on their way.
    pass_timeout: float

    def consumer(self, group: str, subscription: Subscription) -> Consumer: ...

    def publish(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int] | None:
        """Send one message (str is encoded as UTF-8); its `(partition, offset)` where the
        bus can tell."""
        ...

    def close(self) -> None: ...


def to_bytes(value: bytes | str | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"a message key or value must be bytes, str or None, not {type(value)}")
