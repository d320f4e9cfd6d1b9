"""`INSERT ... ON CONFLICT` in the store's SQL dialect.

SQLAlchemy has `on_conflict_do_nothing` and `on_conflict_do_update` only on the inserts of
the PostgreSQL and SQLite dialects. Each dialect's module is imported here when a statement
is first built, not when the store package is: SQLAlchemy's PostgreSQL dialect (with its
asyncpg, psycopg and pg8000 variants) costs about 20 ms of every start-up, and a SQLite
store never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

    from xos_runtime.store.sqlstore import SqlStore

__all__ = ["dialect_insert"]


def dialect_insert(store: SqlStore, table: sa.Table) -> PostgresInsert | SqliteInsert:
    """`insert(table)` of the store's dialect: it has the `on_conflict_*` clauses."""
    if store.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
