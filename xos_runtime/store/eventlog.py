"""The embedded event bus's storage: a message log per topic partition, and the consumer
groups' offsets and leases, in the store's own tables (`event_bus.kind: store`).

Why in the store: messages then survive a restart, and every process that opens the store
(a `run`, `xos-runtime events publish`, a script) can publish into the same log, with no
broker to run. The rules, which keep Kafka's shape:

* a topic has a fixed number of partitions, made by its first message; a message goes to
  the partition its key hashes to (CRC-32), keyless ones round-robin. Offsets are given by a
  counter row per partition, incremented in the publishing transaction: on PostgreSQL that
  row's lock makes concurrent publishers commit in offset order, so a reader never sees a
  later offset before an earlier one; SQLite has one writer at a time anyway. Offsets never
  repeat, also after retention emptied a partition;
* a consumer group has one row per partition: its committed offset (NULL: nothing committed
  yet, so it starts at the oldest retained message) and a lease, `owner` until
  `lease_until`. Only the owner reads and commits the partition, so two processes of one
  group never handle the same message, unless one stalls past its lease (a handler that
  runs longer than the lease, or a process that died: its partitions are free when the
  lease runs out, or at once for a member on the same host, which sees that the process is
  gone);
* retention deletes messages older than a cut by their timestamp (indexed); a group whose
  offset points at a deleted message goes on at the oldest retained one, because a read
  asks for the messages from an offset on, not for that offset.

Each publish wakes the consumers waiting in this and other processes at once, on a channel
of its own (`notify.py` sockets for a SQLite file, LISTEN/NOTIFY on PostgreSQL), not the
store's change channel, so that messages do not wake the sync and policy engines.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from xos_runtime.store.claims import ProcessIdentity
from xos_runtime.store.notify import ChangeHub, Subscription, channel_dir_for
from xos_runtime.store.pgnotify import PgListener, new_token, payload
from xos_runtime.store.sqlstore import SqlStore
from xos_runtime.store.upsert import dialect_insert

__all__ = [
    "DEFAULT_RETENTION",
    "EventLog",
    "LogRecord",
    "PartitionLost",
    "TopicPartition",
    "encode",
]

#: `(topic, partition)`
TopicPartition = tuple[str, int]

#: Seconds a message is kept (`event_bus.retention`): 7 days.
DEFAULT_RETENTION = 7 * 24 * 3600.0

#: What a release of partitions publishes on the channel (a topic name cannot contain '@').
RELEASED = "@released"


class PartitionLost(Exception):
    """A commit for partitions this consumer no longer owns (its lease ran out and another
    member took them): those messages will be delivered again, to the new owner."""


@attrs.frozen
class LogRecord:
    """One stored message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float
    headers: tuple[tuple[str, bytes], ...]


def encode(value: bytes | str | None) -> bytes | None:
    """A key or value as bytes (str is encoded as UTF-8)."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"a message key or value must be bytes, str or None, not {type(value)}")


def _headers_text(headers: Sequence[tuple[str, bytes]]) -> str | None:
    if not headers:
        return None
    return json.dumps([[k, base64.b64encode(v).decode("ascii")] for k, v in headers])


def _headers_of(text: str | None) -> tuple[tuple[str, bytes], ...]:
    if not text:
        return ()
    return tuple((str(k), base64.b64decode(v)) for k, v in json.loads(text))


class EventLog:
    """The message log and consumer groups of one store (module docstring). Thread-safe.

    Made by `SqlStore.event_log` (one per store object, closed with it). `clock` gives the
    wall-clock seconds of message timestamps and leases.
    """

    def __init__(self, store: SqlStore, *, clock: Callable[[], float] = time.time):
        self.store = store
        self.clock = clock
        schema = store.schema
        self.log = schema.event_log
        self.partitions = schema.event_partitions
        self.offsets = schema.event_offsets
        self._token = new_token()
        self._pg_channel: str | None = None
        self.hub = self._make_hub()
        #: Partitions of each topic this process has seen (they never change).
        self._counts: dict[str, int] = {}
        self._round_robin = itertools.count()
        self._here = ProcessIdentity.current()

    def _make_hub(self) -> ChangeHub:
        store = self.store
        if store.dialect == "sqlite":
            db = store.url.database
            local_only = not db or db == ":memory:"
            return ChangeHub(None if local_only else channel_dir_for(f"{db}#events"))
        if store.dialect != "postgresql":
            return ChangeHub(None)
        channel = self._pg_channel = f"{store.pg_channel}_events"
        token, connect = self._token, store.pg_connect

        def listener(deliver: Callable[[set[str]], None]) -> PgListener:
            return PgListener(connect, channel, deliver, token)

        return ChangeHub(None, listener=listener)

    def subscribe(self) -> Subscription:
        """A subscription woken by each message published to this store (from any process),
        and by each release of partitions."""
        return self.hub.subscribe()

    def _notify(self, conn: Connection, names: set[str]) -> None:
        """Inside a write: tell the other processes on PostgreSQL (delivered on commit)."""
        if self._pg_channel is not None:
            note = payload(self._token, names)
            conn.execute(sa.select(sa.func.pg_notify(self._pg_channel, note)))

    # -- producing --------------------------------------------------------------------------

    def append(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | str | None,
        headers: Sequence[tuple[str, bytes]] = (),
        *,
        partitions: int = 1,
        timestamp: float | None = None,
    ) -> tuple[int, int]:
        """Store one message; its `(partition, offset)`. A new topic gets `partitions`
        partitions (an existing one keeps its own)."""
        if not topic:
            raise ValueError("a message needs a topic")
        key_b, value_b = encode(key), encode(value)
        when = self.clock() if timestamp is None else timestamp
        headers = tuple((str(k), bytes(v)) for k, v in headers)
        p = self.partitions
        with self.store.write() as conn:
            count = self._counts.get(topic) or self._create_topic(conn, topic, partitions)
            if key_b is not None:
                partition = zlib.crc32(key_b) % count
            else:
                partition = next(self._round_robin) % count
            bump = (
                sa.update(p)
                .where(p.c.topic == topic, p.c.partition == partition)
                .values(next_offset=p.c.next_offset + 1)
                .returning(p.c.next_offset)
            )
            after = conn.execute(bump).scalar_one_or_none()
            if after is None:  # known here, yet not in the store (made in a rolled-back block)
                self._create_topic(conn, topic, count)
                after = conn.execute(bump).scalar_one()
            offset = int(after) - 1
            conn.execute(
                sa.insert(self.log).values(
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    key=key_b,
                    value=value_b,
                    headers=_headers_text(headers),
                    timestamp=when,
                )
            )
            self._notify(conn, {topic})
        self._counts[topic] = count
        self.hub.publish({topic})
        return partition, offset

    def create_topic(self, topic: str, partitions: int) -> int:
        """Make `topic` with `partitions` partitions unless it exists; its partitions."""
        with self.store.write() as conn:
            count = self._create_topic(conn, topic, partitions)
        self._counts[topic] = count
        return count

    def _create_topic(self, conn: Connection, topic: str, partitions: int) -> int:
        if partitions < 1:
            raise ValueError("a topic needs at least one partition")
        p = self.partitions
        count = conn.execute(
            sa.select(sa.func.count()).select_from(p).where(p.c.topic == topic)
        ).scalar_one()
        if count:
            return int(count)  # a topic keeps the partitions it was made with
        insert = dialect_insert(self.store, p).on_conflict_do_nothing()
        conn.execute(
            insert,
            [{"topic": topic, "partition": i, "next_offset": 0} for i in range(partitions)],
        )
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(p).where(p.c.topic == topic)
            ).scalar_one()
        )

    def sweep(self, before: float) -> int:
        """Delete the messages whose timestamp is older than `before`; how many."""
        with self.store.write(durable=False) as conn:
            return int(
                conn.execute(sa.delete(self.log).where(self.log.c.timestamp < before)).rowcount
            )

    # -- reading ----------------------------------------------------------------------------

    def ends(self) -> dict[TopicPartition, int]:
        """Every partition of every topic, and the offset its next message will get."""
        p = self.partitions
        with self.store.read() as conn:
            rows = conn.execute(sa.select(p.c.topic, p.c.partition, p.c.next_offset))
            return {(str(t), int(n)): int(e) for t, n, e in rows}

    def read(self, tp: TopicPartition, start: int, limit: int) -> list[LogRecord]:
        """Up to `limit` messages of `tp` from offset `start` on (the oldest retained one if
        `start` was deleted), in offset order."""
        topic, partition = tp
        with self.store.read() as conn:
            rows = conn.execute(
                self._read_stmt, {"t": topic, "p": partition, "o": start, "n": limit}
            )
            return [
                LogRecord(
                    topic,
                    partition,
                    int(r.offset),
                    r.key,
                    r.value,
                    float(r.timestamp),
                    _headers_of(r.headers),
                )
                for r in rows
            ]

    @functools.cached_property
    def _read_stmt(self) -> sa.Select[Any]:
        t = self.log
        return (
            sa.select(t.c.offset, t.c.key, t.c.value, t.c.timestamp, t.c.headers)
            .where(
                t.c.topic == sa.bindparam("t"),
                t.c.partition == sa.bindparam("p"),
                t.c.offset >= sa.bindparam("o"),
            )
            .order_by(t.c.offset)
            .limit(sa.bindparam("n"))
        )

    # -- consumer groups --------------------------------------------------------------------

    def join(self, group: str, tps: Iterable[TopicPartition]) -> None:
        """Give `group` a row for each of `tps` it has none for (nothing committed, free)."""
        rows = [
            {
                "consumer_group": group,
                "topic": topic,
                "partition": partition,
                "offset": None,
                "owner": None,
                "lease_until": 0.0,
            }
            for topic, partition in sorted(tps)
        ]
        if not rows:
            return
        insert = dialect_insert(self.store, self.offsets).on_conflict_do_nothing()
        with self.store.write(durable=False) as conn:
            conn.execute(insert, rows)

    @staticmethod
    def new_owner() -> str:
        """A name for a new consumer: this process's identity (host, boot, pid, start) and
        a random part. From it, a member on the same host can tell that the process behind
        a lease has died, and take its partitions without waiting for the lease to end."""
        me = ProcessIdentity.current()
        return "|".join((me.host, me.boot_id, str(me.pid), me.started, uuid.uuid4().hex[:12]))

    @staticmethod
    def _gone(owner: str, here: ProcessIdentity) -> bool:
        parts = owner.split("|")
        if len(parts) != 5 or not parts[2].isdigit():
            return False
        return ProcessIdentity(parts[0], parts[1], int(parts[2]), parts[3]).gone_here(here)

    def claim(
        self, group: str, owner: str, ttl: float, *, topics: Sequence[str] | None = None
    ) -> dict[TopicPartition, int | None]:
        """Take (or renew) for `owner`, until `ttl` seconds from now, every partition of
        `group` (of `topics` only, if given) that is free, whose lease ran out, whose
        owner's process died on this host, or that it holds already; the partitions it
        holds now, each with the group's committed offset (None: nothing committed)."""
        o = self.offsets
        now = self.clock()
        scope = [o.c.consumer_group == group]
        if topics is not None:
            scope.append(o.c.topic.in_(list(topics)))
        with self.store.write(durable=False) as conn:
            others = conn.execute(
                sa.select(o.c.owner)
                .distinct()
                .where(o.c.consumer_group == group, o.c.owner != owner, o.c.lease_until >= now)
            ).scalars()
            dead = [str(other) for other in others if self._gone(str(other), self._here)]
            takeable = [o.c.owner.is_(None), o.c.owner == owner, o.c.lease_until < now]
            if dead:
                takeable.append(o.c.owner.in_(dead))
            rows = conn.execute(
                sa.update(o)
                .where(*scope, sa.or_(*takeable))
                .values(owner=owner, lease_until=now + ttl)
                .returning(o.c.topic, o.c.partition, o.c.offset)
            ).all()
        return {(str(t), int(p)): None if c is None else int(c) for t, p, c in rows}

    def commit(
        self, group: str, owner: str, offsets: Mapping[TopicPartition, int], ttl: float
    ) -> None:
        """Record that `group` consumed each partition up to (excluding) its offset, and renew
        `owner`'s lease; `PartitionLost` (after committing the others) for partitions that
        another member owns now."""
        if not offsets:
            return
        o = self.offsets
        until = self.clock() + ttl
        lost = []
        with self.store.write(durable=False) as conn:
            for (topic, partition), offset in sorted(offsets.items()):
                done = conn.execute(
                    sa.update(o)
                    .where(
                        o.c.consumer_group == group,
                        o.c.topic == topic,
                        o.c.partition == partition,
                        o.c.owner == owner,
                    )
                    .values(offset=offset, lease_until=until)
                )
                if done.rowcount == 0:
                    lost.append(f"{topic}[{partition}]")
        if lost:
            raise PartitionLost(
                f"group {group} no longer owns {', '.join(lost)} (its lease ran out)"
            )

    def holders(self, group: str, owner: str, tps: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Which of `tps` `owner` holds in `group` now (its lease has not run out)."""
        o = self.offsets
        wanted = set(tps)
        topics = sorted({t for t, _ in wanted})
        now = self.clock()
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(o.c.topic, o.c.partition).where(
                    o.c.consumer_group == group,
                    o.c.owner == owner,
                    o.c.lease_until >= now,
                    o.c.topic.in_(topics),
                )
            )
            return {(str(t), int(p)) for t, p in rows} & wanted

    def release(self, group: str, owner: str) -> None:
        """Free the partitions `owner` holds in `group` (its consumer closes) and wake the
        group's other members, so that they take them at once."""
        o = self.offsets
        with self.store.write(durable=False) as conn:
            freed = conn.execute(
                sa.update(o)
                .where(o.c.consumer_group == group, o.c.owner == owner)
                .values(owner=None, lease_until=0.0)
            ).rowcount
            if freed:
                self._notify(conn, {RELEASED})
        if freed:
            self.hub.publish({RELEASED})

    def committed(self, group: str) -> dict[TopicPartition, int]:
        """The offsets `group` committed (partitions with none are absent)."""
        o = self.offsets
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(o.c.topic, o.c.partition, o.c.offset).where(
                    o.c.consumer_group == group, o.c.offset.is_not(None)
                )
            )
            return {(str(t), int(p)): int(c) for t, p, c in rows}

    def close(self) -> None:
        self.hub.close()
