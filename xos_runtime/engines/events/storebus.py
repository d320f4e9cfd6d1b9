"""`StoreBus`, the embedded event bus in the store (`event_bus.kind: store`, the default).

Its messages live in the store's tables (`xos_runtime.store.eventlog`), so they survive a
restart and any process that opens the store publishes into the same log: a `run`,
`xos-runtime events publish`, a script (`accessor.publish_event`). It keeps Kafka's shape,
as `MemoryBus` does: topics with partitions and offsets, a consumer group per event step
with committed offsets, a group that committed nothing starts at the oldest retained
message (`auto_offset_reset = earliest`), and a `pattern` must match the whole topic name.

Members of one group share its partitions through leases in the store: a consumer takes
every partition of its group that is free (or whose lease ran out) and renews its leases as
it polls and commits; a member that closes frees its partitions and wakes the others. So
two `run` processes of one config never handle the same message at once; the second takes
over the partitions when the first stops, or when it died: at once on the same host (the
process is gone), else `LEASE_TTL` seconds later. Assignment
is first come, first served (no balancing between live members).

Messages older than `retention` seconds are deleted, at most every `SWEEP_EVERY` seconds,
by a publish or a poll of this bus. A publish (from any process) wakes a waiting `poll` at
once; the poll's timeout is the fallback for a lost notification.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from loguru import logger

from xos_runtime.engines.events.bus import Consumer, Subscription, TopicPartition, to_bytes
from xos_runtime.steps import Event
from xos_runtime.store import SqlStore
from xos_runtime.store.eventlog import DEFAULT_RETENTION, EventLog, LogRecord, PartitionLost

__all__ = ["LEASE_TTL", "SWEEP_EVERY", "StoreBus"]

#: Seconds a consumer's lease on its partitions lasts unless renewed (a poll or a commit
#: renews it once a third of it has passed).
LEASE_TTL = 30.0

#: Seconds between two tries to take partitions another member holds (a member that
#: closes wakes the others at once).
CLAIM_RETRY = 0.5

#: Longest time (seconds) between two retention sweeps of one bus.
SWEEP_EVERY = 60.0

#: Messages one poll reads at most from one partition.
BATCH = 500


def _event(r: LogRecord) -> Event:
    return Event(r.topic, r.key, r.value, r.timestamp, r.partition, r.offset, r.headers)


class StoreBus:
    """The event bus in the store (module docstring). Thread-safe.

    `partitions`: of each topic this bus creates (a topic keeps the partitions it was made
    with). `clock` gives message timestamps and the retention cut (wall-clock seconds).
    """

    pass_timeout = 0.0  # a published message is in the store at once

    def __init__(
        self,
        store: SqlStore,
        *,
        retention: float = DEFAULT_RETENTION,
        partitions: int = 1,
        lease_ttl: float = LEASE_TTL,
        clock: Callable[[], float] = time.time,
    ):
        if partitions < 1:
            raise ValueError("a topic needs at least one partition")
        self.log: EventLog = store.event_log
        self.retention = retention
        self.partitions = partitions
        self.lease_ttl = lease_ttl
        self.clock = clock
        self._next_sweep = 0.0
        self._consumers: list[_StoreConsumer] = []
        self._closed = False

    # -- producing --------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int]:
        """Store one message (str is encoded as UTF-8); its `(partition, offset)`."""
        if self._closed:
            raise RuntimeError("the event bus is closed")
        where = self.log.append(
            topic,
            to_bytes(key),
            to_bytes(value),
            headers,
            partitions=self.partitions,
            timestamp=self.clock(),
        )
        self.sweep()
        return where

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        self.log.create_topic(topic, partitions or self.partitions)

    def sweep(self, *, force: bool = False) -> None:
        """Delete the messages older than `retention` (at most every `SWEEP_EVERY` seconds,
        and a tenth of the retention, unless `force`)."""
        now = self.clock()
        if not force and now < self._next_sweep:
            return
        self._next_sweep = now + min(SWEEP_EVERY, self.retention / 10)
        self.log.sweep(now - self.retention)

    # -- consuming --------------------------------------------------------------------------

    def topics(self) -> list[str]:
        return sorted({topic for topic, _ in self.log.ends()})

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: n for (t, p), n in self.log.ends().items() if t == topic}

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """The offsets `group` committed, for tests and tools."""
        return self.log.committed(group)

    def consumer(self, group: str, subscription: Subscription) -> Consumer:
        if self._closed:
            raise RuntimeError("the event bus is closed")
        member = _StoreConsumer(self, group, subscription)
        self._consumers.append(member)
        return member

    def close(self) -> None:
        """Close the consumers (their partitions are freed); the log stays with the store."""
        self._closed = True
        for member in list(self._consumers):
            member.close()


class _StoreConsumer:
    def __init__(self, bus: StoreBus, group: str, subscription: Subscription):
        self.bus = bus
        self.log = bus.log
        self.group = group
        self.subscription = subscription
        self.owner = self.log.new_owner()
        # subscribed before the first read: a publish after it wakes the next wait
        self._sub = self.log.subscribe()
        self._positions: dict[TopicPartition, int] = {}
        self._owned: set[TopicPartition] = set()
        self._joined: set[TopicPartition] = set()
        self._paused: set[TopicPartition] = set()
        self._renew_at = 0.0
        self._retry_at = 0.0
        self._woken = False
        self._closed = False

    def _assigned(self) -> dict[TopicPartition, int]:
        """The partitions this member owns now (taking free ones, renewing its leases when
        due), each with the offset its next message will get."""
        ends = {tp: n for tp, n in self.log.ends().items() if self.subscription.matches(tp[0])}
        new = set(ends) - self._joined
        if new:
            self.log.join(self.group, new)
            self._joined |= new
        now = time.monotonic()
        missing = set(ends) - self._owned
        if new or now >= self._renew_at or (missing and now >= self._retry_at):
            owned = self.log.claim(self.group, self.owner, self.bus.lease_ttl)
            for tp in self._owned - owned.keys():
                self._positions.pop(tp, None)  # taken over: its position is the new owner's
            for tp, committed in owned.items():
                self._positions.setdefault(tp, committed or 0)
            self._owned = set(owned)
            self._renew_at = now + self.bus.lease_ttl / 3
            self._retry_at = now + CLAIM_RETRY
        return {tp: ends[tp] for tp in self._owned if tp in ends}

    def _take(self) -> list[Event]:
        out: list[Event] = []
        for tp, end in sorted(self._assigned().items()):
            position = self._positions[tp]
            if tp in self._paused or position >= end:
                continue
            records = self.log.read(tp, position, BATCH)
            # none at all: the retention deleted them; the partition goes on at its end
            self._positions[tp] = records[-1].offset + 1 if records else end
            out.extend(_event(r) for r in records)
        return out

    def poll(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self._closed:
                return []
            self.bus.sweep()
            events = self._take()
            if events or self._woken:
                self._woken = False
                return events
            left = deadline - time.monotonic()
            if left <= 0 or self.bus._closed:
                return []
            self._sub.wait(left)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            self.log.commit(self.group, self.owner, offsets, self.bus.lease_ttl)
        except PartitionLost:
            self._renew_at = 0.0  # the next poll finds out what it still owns
            raise
        self._renew_at = time.monotonic() + self.bus.lease_ttl / 3

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    def pause(self, tp: TopicPartition) -> None:
        self._paused.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self._paused.discard(tp)

    def wakeup(self) -> None:
        self._woken = True
        self._sub.post(())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._sub.close()
        if self in self.bus._consumers:
            self.bus._consumers.remove(self)
        try:
            self.log.release(self.group, self.owner)
        except Exception as exc:  # a store that is away: the leases run out by themselves
            logger.bind(engine="events").debug(
                "cannot free the partitions of {} in the store: {}", self.group, exc
            )
