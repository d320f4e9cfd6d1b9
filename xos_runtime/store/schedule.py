"""Interval jobs shared by several processes: each run of a job is taken by one of them.

A job (a pull step) has one row: when it is next due. A process that finds the job due
moves `due` one interval ahead in one conditional statement (`UPDATE ... WHERE due <= now`),
and only the process whose statement changed the row runs the job. No lease, no cleanup:
a process that dies after taking a run simply lets the next interval come round.
"""

from __future__ import annotations

import sqlalchemy as sa

from xos_runtime.store.sqlstore import SqlStore
from xos_runtime.store.upsert import dialect_insert

__all__ = ["Schedule"]


class Schedule:
    """The shared schedule of interval jobs on one store, as seen by one process (`owner`)."""

    def __init__(self, store: SqlStore, owner: str):
        self.store = store
        self.owner = owner
        self.table = store.schema.schedule

    def take(self, job: str, now: float, interval: float) -> bool:
        """True when this process gets the run of `job` due at `now` (next one: +interval)."""
        t = self.table
        with self.store.write() as conn:
            moved = conn.execute(
                sa.update(t)
                .where(t.c.name == job, t.c.due <= now)
                .values(due=now + interval, owner=self.owner)
            ).rowcount
            if moved:
                return True
            added = conn.execute(
                dialect_insert(self.store, t)
                .values(name=job, due=now + interval, owner=self.owner)
                .on_conflict_do_nothing()
                .returning(t.c.name)
            ).first()
            return added is not None
