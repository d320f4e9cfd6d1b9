"""Interval jobs shared by several processes: each run of a job is taken by one of them.

A job (a pull step) has one row: when it is next due. A process that finds the job due
moves `due` one interval ahead in one conditional statement (`UPDATE ... WHERE due <= now`),
and only the process whose statement changed the row runs the job. No lease, no cleanup:
a process that dies after taking a run simply lets the next interval come round.

A take may be sent again when its answer was lost on the way (over a core, `idempotent`):
the run is then still the sender's when the row holds what that take wrote, its `owner` and
`now + interval`. Only the same owner asking for the same run can match it, so the repeat
neither takes a second run nor loses the first.
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

    def take(self, job: str, now: float, interval: float, *, idempotent: bool = False) -> bool:
        """True when this process gets the run of `job` due at `now` (next one: +interval).

        `idempotent`: this call may repeat one whose answer was lost; if that one took the
        run, this one says so too (see the module docstring)."""
        t = self.table
        due = now + interval
        mine: sa.ColumnElement[bool] = t.c.due <= now
        if idempotent:
            mine = sa.or_(mine, sa.and_(t.c.owner == self.owner, t.c.due == due))
        with self.store.write() as conn:
            moved = conn.execute(
                sa.update(t).where(t.c.name == job, mine).values(due=due, owner=self.owner)
            ).rowcount
            if moved:
                return True
            added = conn.execute(
                dialect_insert(self.store, t)
                .values(name=job, due=due, owner=self.owner)
                .on_conflict_do_nothing()
                .returning(t.c.name)
            ).first()
            return added is not None
