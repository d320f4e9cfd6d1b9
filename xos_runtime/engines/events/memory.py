"""`MemoryBus`, an in-process event bus: for tests, and for tools that have no store (the
config's `event_bus.kind: memory` is an alias of ``store``, `storebus.py`).

It keeps Kafka's shape so that a plugin behaves the same on either bus: topics with
partitions and offsets, consumer groups whose members split the partitions, committed offsets
per group, `auto_offset_reset = earliest` for a group that committed nothing. Messages live as
long as the bus (there is no retention). A `pattern` must match the whole topic name.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Mapping, Sequence

import attrs

from xos_runtime.engines.events.bus import Consumer, Subscription, TopicPartition, to_bytes
from xos_runtime.steps import Event

__all__ = ["MemoryBus"]


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
    ) -> tuple[int, int]:
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
            offset = len(log)
            log.append(Event(topic, key_b, value_b, time.time(), partition, offset, tuple(headers)))
            self._cond.notify_all()
            return partition, offset

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
