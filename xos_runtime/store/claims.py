"""Leases on objects: how several runtime processes share one store without doing the same
work twice.

Before an engine works on an object it claims it: a row `(kind, root, id) -> owner, expires`
in one table, inserted only if no live claim exists (`INSERT ... ON CONFLICT DO NOTHING`, on
SQLite and PostgreSQL alike). A process renews its claims while it works and drops them when
done. A process that dies simply stops renewing: its claims expire after the lease time and
another process takes the work over. `kind` separates engines (a sync and a policy may work
on the same object at once, as in XOS).

A claim alone is not enough: another process may have finished the object between our read
and our claim. Engines therefore re-read what they claimed and drop what is no longer
pending (see the sync engine).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from xos_runtime.store.sqlstore import SqlStore

ClaimKey = tuple[str, int]  # (root model, id)


def new_owner() -> str:
    """A name for this process's claims: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Claims:
    """The claims of one owner (one engine of one process) on one store."""

    def __init__(self, store: SqlStore, kind: str, owner: str | None = None, ttl: float = 60.0):
        self.store = store
        self.kind = kind
        self.owner = owner or new_owner()
        self.ttl = ttl
        self.table = store.schema.claims

    def _insert(self) -> sa.Insert:
        if self.store.dialect == "postgresql":
            return postgresql.insert(self.table).on_conflict_do_nothing()
        return sqlite.insert(self.table).on_conflict_do_nothing()

    def claim(self, keys: Iterable[ClaimKey], now: float) -> set[ClaimKey]:
        """Claim what is free (or expired); returns the keys this owner now holds."""
        wanted = set(keys)
        if not wanted:
            return set()
        t = self.table
        rows = [
            {
                "kind": self.kind,
                "root": root,
                "obj_id": oid,
                "owner": self.owner,
                "expires": now + self.ttl,
            }
            for root, oid in wanted
        ]
        with self.store.write() as conn:
            conn.execute(sa.delete(t).where(t.c.kind == self.kind, t.c.expires < now))
            conn.execute(self._insert(), rows)
            held = conn.execute(
                sa.select(t.c.root, t.c.obj_id).where(
                    t.c.kind == self.kind, t.c.owner == self.owner
                )
            )
            mine = {(str(r.root), int(r.obj_id)) for r in held}
        return mine & wanted

    def renew(self, now: float) -> None:
        """Push the expiry of every claim of this owner `ttl` seconds past `now`."""
        t = self.table
        with self.store.write() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.kind == self.kind, t.c.owner == self.owner)
                .values(expires=now + self.ttl)
            )

    def release(self) -> None:
        """Drop every claim of this owner (after its outcomes were stored)."""
        t = self.table
        with self.store.write() as conn:
            conn.execute(sa.delete(t).where(t.c.kind == self.kind, t.c.owner == self.owner))
