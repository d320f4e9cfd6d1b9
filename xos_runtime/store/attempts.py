"""Failed calls of event messages, kept in the store so that a retry limit survives restarts.

The event engine calls an event step's `process_event` at most `events.max_attempts` times
for one message. Counting those calls in memory is not enough: a message that was never
committed is delivered again after a restart, or to another process of the consumer group
after a rebalance. So each failed call is counted in one row per message,
`(consumer group, topic, partition, offset) -> attempts, last error, next run`, with an
`INSERT ... ON CONFLICT DO UPDATE` that several processes may run at once (on SQLite and
PostgreSQL alike). The row goes once the message is committed, so the table holds only the
messages that are failing now.

A failed call sent again because its answer was lost (over a core, `idempotent`) must not
count twice. Its repeat carries the very `last_error` and `next_run` the first one stored,
and `next_run` is an epoch time with jitter: two distinct failures of one message never
write the same pair in practice, so a row that already holds the pair is the first call's
work, and the repeat answers its count without adding one. Local calls count every call
(the engine never repeats one, and tests with a fake clock do write equal pairs).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import attrs
import sqlalchemy as sa

from xos_runtime.store.sqlstore import SqlStore
from xos_runtime.store.upsert import dialect_insert

__all__ = ["Attempts", "EventAttempts", "MessageKey", "PartitionKey"]

#: `(topic, partition)`
PartitionKey = tuple[str, int]
#: `(topic, partition, offset)`
MessageKey = tuple[str, int, int]


@attrs.frozen
class Attempts:
    """What the store knows of one message: its failed calls, the last error, when to retry."""

    attempts: int
    last_error: str
    next_run: float


class EventAttempts:
    """The failed calls of the messages of one consumer group."""

    def __init__(self, store: SqlStore, group: str):
        self.store = store
        self.group = group
        self.table = store.schema.event_attempts

    def failed(
        self, message: MessageKey, error: str, next_run: float, *, idempotent: bool = False
    ) -> int:
        """Count one more failed call of `message`; returns its failed calls in all.

        `error` and `next_run` (epoch seconds of its retry) replace what was stored.
        `idempotent`: the call may repeat one whose answer was lost, and a row holding this
        `error` and `next_run` already counts it (see the module docstring).
        """
        t = self.table
        topic, partition, offset = message
        row = {
            "consumer_group": self.group,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "attempts": 1,
            "last_error": error,
            "next_run": next_run,
        }
        insert = dialect_insert(self.store, t).values(row)
        counted: sa.ColumnElement[int] = t.c.attempts + 1
        if idempotent:
            repeat = sa.and_(
                t.c.last_error == insert.excluded.last_error,
                t.c.next_run == insert.excluded.next_run,
            )
            counted = sa.case((repeat, t.c.attempts), else_=t.c.attempts + 1)
        upsert = insert.on_conflict_do_update(
            index_elements=[t.c.consumer_group, t.c.topic, t.c.partition, t.c.offset],
            set_={
                "attempts": counted,
                "last_error": insert.excluded.last_error,
                "next_run": insert.excluded.next_run,
            },
        ).returning(t.c.attempts)
        with self.store.write() as conn:
            return int(conn.execute(upsert).scalar_one())

    def load(self, spans: Mapping[PartitionKey, tuple[int, int]]) -> dict[MessageKey, Attempts]:
        """The stored attempts of the messages in `spans`, `(topic, partition) -> (first
        offset, last offset)` (both included); messages never failed are absent."""
        if not spans:
            return {}
        found: dict[MessageKey, Attempts] = {}
        with self.store.read() as conn:
            for (topic, partition), (first, last) in spans.items():
                rows = conn.execute(
                    self._span,
                    {"g": self.group, "t": topic, "p": partition, "lo": first, "hi": last},
                )
                for r in rows:
                    found[(topic, partition, int(r.offset))] = Attempts(
                        int(r.attempts), str(r.last_error), float(r.next_run)
                    )
        return found

    @functools.cached_property
    def _span(self) -> sa.Select[Any]:
        # built once: the engine reads a span for each polled batch
        t = self.table
        return sa.select(t.c.offset, t.c.attempts, t.c.last_error, t.c.next_run).where(
            t.c.consumer_group == sa.bindparam("g"),
            t.c.topic == sa.bindparam("t"),
            t.c.partition == sa.bindparam("p"),
            t.c.offset.between(sa.bindparam("lo"), sa.bindparam("hi")),
        )

    def forget(self, committed: Mapping[PartitionKey, int]) -> None:
        """Drop the rows of the messages below the committed offsets (`(topic, partition) ->
        the next offset to consume`): they will not be delivered again."""
        if not committed:
            return
        t = self.table
        where = sa.or_(
            *(
                sa.and_(t.c.topic == topic, t.c.partition == partition, t.c.offset < offset)
                for (topic, partition), offset in committed.items()
            )
        )
        with self.store.write() as conn:
            conn.execute(sa.delete(t).where(t.c.consumer_group == self.group, where))
