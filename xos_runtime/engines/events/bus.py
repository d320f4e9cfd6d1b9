"""The event bus as the event engine sees it, and `MemoryBus`, the embedded in-process bus.

A bus hands out one `Consumer` per consumer group and subscription. The event engine gives
every event step a group of its own, so two steps on one topic both see every message (the
original shared one group between all steps, reference 8.C4). Offsets are committed by the
engine, never automatically: a message counts as consumed only once its handler returned.

`MemoryBus` keeps Kafka's shape so that a plugin behaves the same on either bus: topics with
partitions and offsets, consumer groups whose members split the partitions, committed offsets
per group, `auto_offset_reset = earliest` for a group that committed nothing. Messages live as
long as the bus (there is no retention). A `pattern` must match the whole topic name.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs

from xos_runtime.steps import Event

if TYPE_CHECKING:
    from xos_runtime.config import EventBusSettings

__all__ = [
    "Consumer",
    "EventBus",
    "MemoryBus",
    "Subscription",
    "TopicPartition",
    "open_event_bus",
]

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
    ) -> None:
        """Send one message (str is encoded as UTF-8)."""
        ...

    def close(self) -> None: ...


def open_event_bus(settings: EventBusSettings, client_id: str = "xos-runtime") -> EventBus:
    """The bus the config's `event_bus` section names: a new `MemoryBus`, or a `KafkaBus`."""
    if settings.kind == "kafka":
        from xos_runtime.engines.events.kafka import KafkaBus  # kafka-python only when asked for

        return KafkaBus(settings.servers, client_id=client_id)
    return MemoryBus()


def to_bytes(value: bytes | str | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"a message key or value must be bytes, str or None, not {type(value)}")


@attrs.define(eq=False)
class _Group:
    committed: dict[TopicPartition, int] = attrs.field(factory=dict)
    members: list[_MemoryConsumer] = attrs.field(factory=list)


class MemoryBus:
    """An in-process bus with Kafka's semantics (module docstring). Thread-safe.

    `partitions` is the number of partitions of each topic, created on first publish (or by
    `create_topic`); a message goes to the partition its key hashes to (CRC-32), keyless
    messages round-robin.
    """

    pass_timeout = 0.0  # a published message is there at once

    def __init__(self, partitions: int = 1):
        if partitions < 1:
            raise ValueError("a topic needs at least one partition")
        self.partitions = partitions
        self._logs: dict[TopicPartition, list[Event]] = {}
        self._topics: dict[str, int] = {}
        self._groups: dict[str, _Group] = {}
        self._cond = threading.Condition()
        self._round_robin = 0
        self._closed = False

    # -- producing -----------------------------------------------------------------------------

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        with self._cond:
            self._create(topic, partitions or self.partitions)

    def _create(self, topic: str, partitions: int) -> None:
        if topic in self._topics:
            return
        self._topics[topic] = partitions
        for p in range(partitions):
            self._logs[(topic, p)] = []

    def publish(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        if not topic:
            raise ValueError("a message needs a topic")
        key_b, value_b = to_bytes(key), to_bytes(value)
        with self._cond:
            if self._closed:
                raise RuntimeError("the event bus is closed")
            self._create(topic, self.partitions)
            count = self._topics[topic]
            if key_b is not None:
                partition = zlib.crc32(key_b) % count
            else:
                partition = self._round_robin % count
                self._round_robin += 1
            log = self._logs[(topic, partition)]
            log.append(
                Event(topic, key_b, value_b, time.time(), partition, len(log), tuple(headers))
            )
            self._cond.notify_all()

    # -- consuming -----------------------------------------------------------------------------

    def topics(self) -> list[str]:
        with self._cond:
            return sorted(self._topics)

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._cond:
            return {p: len(self._logs[(topic, p)]) for p in range(self._topics.get(topic, 0))}

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """The offsets `group` committed (a copy), for tests and tools."""
        with self._cond:
            g = self._groups.get(group)
            return dict(g.committed) if g else {}

    def consumer(self, group: str, subscription: Subscription) -> Consumer:
        with self._cond:
            member = _MemoryConsumer(self, group, subscription)
            self._groups.setdefault(group, _Group()).members.append(member)
            return member

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for g in self._groups.values():
                g.members.clear()
            self._cond.notify_all()

    def _assignment(self, member: _MemoryConsumer) -> list[TopicPartition]:
        """The partitions `member` owns: its group's matching partitions, round-robin over the
        members in join order (recomputed on each poll: topics and members come and go)."""
        group = self._groups[member.group]
        if member not in group.members:
            return []
        owned = [
            tp
            for tp in sorted(self._logs)
            if any(m.subscription.matches(tp[0]) for m in group.members)
        ]
        index = group.members.index(member)
        count = len(group.members)
        return [tp for i, tp in enumerate(owned) if i % count == index]


class _MemoryConsumer:
    def __init__(self, bus: MemoryBus, group: str, subscription: Subscription):
        self.bus = bus
        self.group = group
        self.subscription = subscription
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._woken = False
        self._closed = False

    def _refresh(self) -> list[TopicPartition]:
        """Positions for the current assignment (called with the bus lock held)."""
        assigned = [tp for tp in self.bus._assignment(self) if self.subscription.matches(tp[0])]
        committed = self.bus._groups[self.group].committed
        positions = {tp: self._positions.get(tp, committed.get(tp, 0)) for tp in assigned}
        self._positions = positions
        self._paused &= set(assigned)
        return assigned

    def _take(self) -> list[Event]:
        out: list[Event] = []
        for tp in self._refresh():
            if tp in self._paused:
                continue
            log = self.bus._logs[tp]
            position = self._positions[tp]
            if position < len(log):
                out.extend(log[position:])
                self._positions[tp] = len(log)
        return out

    def poll(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + max(0.0, timeout)
        with self.bus._cond:
            while True:
                if self._closed:
                    return []
                events = self._take()
                if events or self._woken:
                    self._woken = False
                    return events
                left = deadline - time.monotonic()
                if left <= 0 or self.bus._closed:
                    return []
                self.bus._cond.wait(left)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        with self.bus._cond:
            self.bus._groups[self.group].committed.update(offsets)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        with self.bus._cond:
            self._positions[tp] = offset

    def pause(self, tp: TopicPartition) -> None:
        with self.bus._cond:
            self._paused.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        with self.bus._cond:
            self._paused.discard(tp)
            self.bus._cond.notify_all()

    def wakeup(self) -> None:
        with self.bus._cond:
            self._woken = True
            self.bus._cond.notify_all()

    def close(self) -> None:
        with self.bus._cond:
            self._closed = True
            group = self.bus._groups.get(self.group)
            if group is not None and self in group.members:
                group.members.remove(self)
            self.bus._cond.notify_all()
