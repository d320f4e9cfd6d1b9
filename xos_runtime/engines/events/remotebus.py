"""`RemoteBus`: the embedded event bus of a core, over HTTP (`xos_runtime.core.events`).

For a runtime whose store is a core (`accessor.endpoint: http(s)://...`): it publishes into
the core's log and consumes it as a member of consumer groups, sharing each group's
partitions with the processes on the core's store through the same leases. It is what
`open_event_bus` gives a runtime over a `RemoteAccessor` whose `event_bus.kind` is `store`
(or `memory`).

A consumer reads on from where it is (its positions, sent with each fetch) until it
commits; `seek` moves a position, `pause` holds a partition back (its messages are fetched
but dropped, and come again on `resume`). A `poll` over several topics asks each in turn,
waiting on one at a time for at most `TURN` seconds. A consumer of a pattern lists the
core's topics every `TOPICS_EVERY` seconds and reads those the pattern matches (whole
names, as on every bus). `close` leaves the group, freeing the member's partitions at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Mapping, Sequence

from xos_runtime.engines.events.bus import Consumer, Subscription, TopicPartition
from xos_runtime.steps import Event
from xos_runtime.store.eventlog import LogRecord
from xos_runtime.store.remote import CoreClient, CoreEvents

__all__ = ["LONGEST_WAIT", "TOPICS_EVERY", "TURN", "RemoteBus"]

#: Longest wait (seconds) on one topic of a poll over several, and on a single topic (a
#: `wakeup` waits for the fetch under way: at most that).
TURN = 1.0
LONGEST_WAIT = 5.0
#: Messages one fetch returns at most.
BATCH = 500
#: Seconds between two listings of the core's topics by a consumer of a pattern.
TOPICS_EVERY = 1.0


def _event(r: LogRecord) -> Event:
    return Event(r.topic, r.key, r.value, r.timestamp, r.partition, r.offset, r.headers)


class RemoteBus:
    """The core's event bus through `client` (its user must be a synchronizer to consume).

    `member`: the name this bus's consumers take in their groups (default: a new random
    one per consumer)."""

    pass_timeout = 0.0  # a published message is in the core's store at once

    def __init__(self, client: CoreClient, *, member: str | None = None):
        self.events = CoreEvents(client)
        self.member = member
        self._consumers: list[_RemoteConsumer] = []
        self._closed = False

    def publish(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[int, int]:
        if self._closed:
            raise RuntimeError("the event bus is closed")
        return self.events.publish(topic, key, value, headers)

    def consumer(self, group: str, subscription: Subscription) -> Consumer:
        if self._closed:
            raise RuntimeError("the event bus is closed")
        member = self.member or uuid.uuid4().hex[:16]
        consumer = _RemoteConsumer(self, group, subscription, member)
        self._consumers.append(consumer)
        return consumer

    def close(self) -> None:
        """Close the consumers (they leave their groups); the client stays its owner's."""
        self._closed = True
        for consumer in list(self._consumers):
            consumer.close()


class _RemoteConsumer:
    def __init__(self, bus: RemoteBus, group: str, subscription: Subscription, member: str):
        self.bus = bus
        self.events = bus.events
        self.group = group
        self.subscription = subscription
        self.topics = list(subscription.topics)
        #: When the topics of a pattern were last listed (monotonic seconds).
        self._listed_at: float | None = None
        self.member = member
        self._positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._turn = 0
        self._woken = threading.Event()
        self._closed = False

    def _fetch(self, topic: str, wait: float) -> list[Event]:
        positions = {p: o for (t, p), o in self._positions.items() if t == topic}
        records = self.events.fetch(
            topic, self.group, self.member, most=BATCH, wait=wait, positions=positions
        )
        out: list[Event] = []
        for r in records:
            tp = (topic, r.partition)
            if tp in self._paused or r.offset < self._positions.get(tp, 0):
                continue
            self._positions[tp] = r.offset + 1
            out.append(_event(r))
        return out

    def _subscribed(self) -> list[str]:
        """The topics to read: those named, or those of the core's log that the pattern
        matches (listed again every `TOPICS_EVERY` seconds, so a new topic is read soon)."""
        pattern = self.subscription.pattern
        now = time.monotonic()
        if pattern is not None and (
            self._listed_at is None or now - self._listed_at >= TOPICS_EVERY
        ):
            self._listed_at = now
            self.topics = [t for t in self.events.topics() if self.subscription.matches(t)]
        return self.topics

    def poll(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + max(0.0, timeout)
        if not self.topics and self.subscription.pattern is None:
            return []
        while not self._closed:
            topics = self._subscribed()
            for topic in topics:  # what is there now, of every topic
                found = self._fetch(topic, 0.0)
                if found:
                    return found
            left = deadline - time.monotonic()
            if left <= 0 or self._woken.is_set():
                self._woken.clear()
                return []
            longest = TURN if len(topics) > 1 else LONGEST_WAIT
            if self.subscription.pattern is not None:
                longest = min(longest, TOPICS_EVERY)  # a new topic is seen that soon
            if not topics:
                self._woken.wait(min(left, longest))
                continue
            topic = topics[self._turn % len(topics)]
            self._turn += 1
            found = self._fetch(topic, min(left, longest))
            if found:
                return found
        return []

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        by_topic: dict[str, dict[int, int]] = {}
        for (topic, partition), offset in offsets.items():
            by_topic.setdefault(topic, {})[partition] = offset
        for topic, parts in sorted(by_topic.items()):
            self.events.commit(topic, self.group, self.member, parts)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    def pause(self, tp: TopicPartition) -> None:
        self._paused.add(tp)

    def resume(self, tp: TopicPartition) -> None:
        self._paused.discard(tp)

    def wakeup(self) -> None:
        """The poll returns after its current fetch (at most `LONGEST_WAIT` seconds)."""
        self._woken.set()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self in self.bus._consumers:
            self.bus._consumers.remove(self)
        for topic in self.topics[:1]:  # leaving frees the member's partitions of every topic
            # a core that is away: the leases run out by themselves
            with contextlib.suppress(Exception):
                self.events.leave(topic, self.group, self.member)
