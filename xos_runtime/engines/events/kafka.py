"""`KafkaBus`: the event bus over a Kafka cluster (`event_bus.kind: kafka`), with kafka-python.

Consumers never auto-commit (the event engine commits after handling), start at the earliest
offset when their group has committed nothing, and reconnect within about a second when the
broker comes back (`reconnect_backoff_max_ms`). kafka-python does not raise from `poll()`
while the broker is away; it retries, and so does the engine around it. The producer
behind `publish` is not idempotent: an idempotent producer stays broken after a broker that
lost its state (a restarted in-memory broker, say) comes back.

An outage is told in two lines (`BrokerWatch`): a warning when no consumer of the bus has
reached the cluster for `AWAY_AFTER` seconds, and one when it is back, with how long it was
gone. kafka-python itself logs every failed reconnect as an error with a traceback, several
times a second; while a `KafkaBus` is open its records are passed on at DEBUG (unless the
``kafka`` logger was configured, by an XOS logging dictConfig say).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaError
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as _KafkaTP
from loguru import logger

from xos_runtime.engines.events.bus import Consumer, Subscription, TopicPartition, to_bytes
from xos_runtime.steps import Event, make_event

__all__ = ["AWAY_AFTER", "CONSUMER_DEFAULTS", "PRODUCER_DEFAULTS", "BrokerWatch", "KafkaBus"]

#: kafka-python consumer settings the runtime chooses (any can be overridden per bus). The
#: session timeout also bounds how long a group join takes: the broker may hold the join
#: reply for half of it.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "session_timeout_ms": 6_000,  # the smallest a Kafka broker accepts by default
    "heartbeat_interval_ms": 1_000,
    "fetch_max_wait_ms": 100,
    "reconnect_backoff_max_ms": 1_000,
    "metadata_max_age_ms": 30_000,  # how soon a pattern subscription sees a new topic
    "bootstrap_timeout_ms": 2_000,
}

#: kafka-python producer settings for `KafkaBus.publish`.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable_idempotence": False,
    "reconnect_backoff_max_ms": 1_000,
    "linger_ms": 0,
}

#: Seconds the first poll of a consumer waits for messages once its group has formed.
FIRST_FETCH = 1.0
#: Seconds one `commit` may block (a broker that is away fails it instead of hanging).
COMMIT_TIMEOUT = 5.0
#: Seconds without a connection to the cluster before the bus logs that it is away (shorter
#: gaps are kafka-python reconnecting, not worth a line).
AWAY_AFTER = 2.0


class BrokerWatch:
    """Whether the cluster answers, as the bus's consumers see it after each poll; logs one
    warning when it goes away and one line when it is back, with the time it was gone.

    Away: a consumer saw no connection for `away_after` seconds and no consumer saw one
    meanwhile. Back: a consumer sees a connection again.
    """

    def __init__(
        self,
        servers: Sequence[str],
        *,
        away_after: float = AWAY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.servers = ",".join(servers)
        self.away_after = away_after
        self.clock = clock
        self._lock = threading.Lock()
        self._last_ok = -math.inf
        self._down_since: float | None = None
        self._away_since: float | None = None
        self._log = logger.bind(servers=self.servers)

    @property
    def away(self) -> bool:
        return self._away_since is not None

    def report(self, connected: bool | None) -> None:
        """What a consumer saw: connected to the cluster, not, or None when it cannot tell."""
        if connected is None:
            return
        now = self.clock()
        with self._lock:
            if connected:
                self._last_ok, self._down_since = now, None
                if self._away_since is not None:
                    gone, self._away_since = now - self._away_since, None
                    self._log.info("Kafka broker {} is back after {:.1f}s", self.servers, gone)
                return
            if self._down_since is None:
                self._down_since = now
            if (
                self._away_since is None
                and now - self._down_since >= self.away_after
                and now - self._last_ok >= self.away_after
            ):
                self._away_since = self._down_since
                self._log.warning(
                    "Kafka broker {} is away: no connection for {:.1f}s; reconnecting until it "
                    "is back",
                    self.servers,
                    now - self._down_since,
                )


class _Demoted(logging.Handler):
    """Passes kafka-python's records on at DEBUG (module docstring), while a bus is open."""

    _lock = threading.Lock()
    _users = 0
    _installed: _Demoted | None = None

    def emit(self, record: logging.LogRecord) -> None:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        logging.getLogger().handle(record)

    @classmethod
    def acquire_for_bus(cls) -> None:
        with cls._lock:
            cls._users += 1
            client = logging.getLogger("kafka")
            # kafka-python adds a NullHandler of its own; another handler, a level or no
            # propagation means the user configured it: left as it is
            configured = [h for h in client.handlers if not isinstance(h, logging.NullHandler)]
            if cls._installed or configured or not client.propagate or client.level:
                return
            cls._installed = cls()
            client.addHandler(cls._installed)
            client.propagate = False

    @classmethod
    def release_for_bus(cls) -> None:
        with cls._lock:
            cls._users = max(0, cls._users - 1)
            if cls._users or cls._installed is None:
                return
            client = logging.getLogger("kafka")
            client.removeHandler(cls._installed)
            client.propagate = True
            cls._installed = None


class KafkaBus:
    """Consumers and a producer on the Kafka cluster at `servers` (`host:port` strings).

    `join_timeout`: how long the first `poll` of a new consumer waits for its group to
    assign it partitions, so that a `--once` pass does not come back empty only because the
    group was still forming.
    """

    #: How long a pass (`--once`, `--until-idle`) waits for messages that are on their way.
    pass_timeout = 0.2

    def __init__(
        self,
        servers: Sequence[str],
        *,
        client_id: str = "xos-runtime",
        consumer_options: Mapping[str, Any] | None = None,
        producer_options: Mapping[str, Any] | None = None,
        join_timeout: float = 10.0,
    ):
        if not servers:
            raise ValueError("a Kafka bus needs at least one bootstrap server")
        self.servers = list(servers)
        self.client_id = client_id
        self.consumer_options = {**CONSUMER_DEFAULTS, **(consumer_options or {})}
        self.producer_options = {**PRODUCER_DEFAULTS, **(producer_options or {})}
        self.join_timeout = join_timeout
        self.watch = BrokerWatch(self.servers)
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._closed = False
        _Demoted.acquire_for_bus()

    def consumer(self, group: str, subscription: Subscription) -> Consumer:
        return _KafkaConsumer(self, group, subscription)

    def publish(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] = (),
        timeout: float = 10.0,
    ) -> tuple[int, int]:
        """Send one message and wait until the broker acknowledged it; its `(partition,
        offset)`."""
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    bootstrap_servers=self.servers,
                    client_id=self.client_id,
                    **self.producer_options,
                )
            producer = self._producer
        future = producer.send(
            topic, key=to_bytes(key), value=to_bytes(value), headers=list(headers) or None
        )
        sent = future.get(timeout=timeout)
        return int(sent.partition), int(sent.offset)

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
            closed, self._closed = self._closed, True
        if producer is not None:
            producer.close(timeout=2)
        if not closed:
            _Demoted.release_for_bus()


def _events(batches: Mapping[Any, list[Any]]) -> list[Event]:
    """The events of kafka-python's records, in order (one loop: it runs for every message)."""
    events: list[Event] = []
    append = events.append
    for records in batches.values():
        for r in records:
            timestamp = r.timestamp
            append(
                make_event(
                    r.topic,
                    r.key,
                    r.value,
                    # Kafka gives milliseconds; -1 (or None) means the broker does not say
                    timestamp / 1000.0 if timestamp is not None and timestamp >= 0 else None,
                    r.partition,
                    r.offset,
                    r.headers,
                )
            )
    return events


def _drop_parked(consumer: KafkaConsumer, tp: _KafkaTP) -> None:
    """Work around a kafka-python 3.0 bug that stalls a resumed partition for good.

    kafka-python 3.0 keeps ("parks") records it fetched for a partition that is paused
    (KAFKA-7548), and hands them back after `resume` only when no other partition's record
    set is in line. But a drained record set stays in line for ever (it is emptied, never
    cleared), so the parked records are never handed back, and a partition with parked
    records is never fetched again. The engine always seeks a partition before it pauses
    it, so whatever is parked is behind the wanted position anyway: dropping it makes the
    partition fetched again from there. A no-op on versions without that buffer.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    parked = getattr(fetcher, "_paused_partition_records", None)
    if isinstance(parked, dict):
        records = parked.pop(tp, None)
        if records is not None:
            records.drain()


class _KafkaConsumer:
    """A `Consumer` over one kafka-python `KafkaConsumer` (a member of `group`)."""

    def __init__(self, bus: KafkaBus, group: str, subscription: Subscription):
        self.bus = bus
        self.group = group
        self._log = logger.bind(group=group)
        self._consumer = KafkaConsumer(
            bootstrap_servers=bus.servers,
            client_id=bus.client_id,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **bus.consumer_options,
        )
        if subscription.pattern is not None:
            # kafka-python matches a pattern at the start of a topic name only (`re.match`);
            # the runtime's patterns match the whole name, as in the Java client.
            whole = re.compile(rf"(?:{subscription.pattern.pattern})\Z")
            self._consumer.subscribe(pattern=whole)
        else:
            self._consumer.subscribe(topics=list(subscription.topics))
        self._joined = False
        self._woken = threading.Event()

    def poll(self, timeout: float) -> list[Event]:
        self._woken.clear()
        timeout = max(0.0, timeout)
        deadline = time.monotonic() + timeout
        join_deadline = time.monotonic() + self.bus.join_timeout
        while True:
            limit = deadline if self._joined else max(deadline, join_deadline)
            left = max(0.0, limit - time.monotonic())
            step = left if self._joined else min(left, 0.2)
            try:
                batches = self._consumer.poll(timeout_ms=int(step * 1000))
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                # What kafka-python mostly only logs while the cluster is away, it sometimes
                # raises: either way an empty poll, and the outage is the watch's to tell.
                self._log.debug("poll: {}", exc)
                self.bus.watch.report(
                    False if isinstance(exc, KafkaConnectionError) else self._connected()
                )
                self._woken.wait(max(0.0, deadline - time.monotonic()))
                return []
            if not self._joined and self._consumer.assignment():
                # the group has formed: give the first fetch (offset look-ups first) a moment
                self._joined = True
                deadline = max(deadline, time.monotonic() + max(timeout, FIRST_FETCH))
            self.bus.watch.report(self._connected())
            events = _events(batches)
            limit = deadline if self._joined else max(deadline, join_deadline)
            if events or self._woken.is_set() or time.monotonic() >= limit:
                self._joined = True  # wait for the group on the first poll only
                return events

    def _connected(self) -> bool | None:
        """Whether this consumer holds a connection to a broker of the cluster (False when
        it never learnt of one); None when kafka-python does not say."""
        try:
            client = self._consumer._client
            nodes = [
                getattr(b, "node_id", getattr(b, "nodeId", None)) for b in client.cluster.brokers()
            ]
            return any(client.connected(node) for node in nodes)
        except Exception:  # another kafka-python version: no opinion
            return None

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self._consumer.commit(
            {
                _KafkaTP(topic, partition): OffsetAndMetadata(offset, "", -1)
                for (topic, partition), offset in offsets.items()
            },
            timeout_ms=int(COMMIT_TIMEOUT * 1000),
        )

    def _on_partition(self, what: str, tp: TopicPartition, *args: Any) -> None:
        try:
            getattr(self._consumer, what)(_KafkaTP(*tp), *args)
        except Exception as exc:  # not assigned any more (a rebalance): nothing to do
            self._log.debug("{} {}: {}", what, tp, exc)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._on_partition("seek", tp, offset)

    def pause(self, tp: TopicPartition) -> None:
        self._on_partition("pause", tp)

    def resume(self, tp: TopicPartition) -> None:
        self._on_partition("resume", tp)
        _drop_parked(self._consumer, _KafkaTP(*tp))

    def wakeup(self) -> None:
        # kafka-python has no wakeup(): a poll returns within its (short) timeout anyway
        self._woken.set()

    def close(self) -> None:
        self._consumer.close(autocommit=False, timeout_ms=2_000)
