"""A SQLite file that holds someone else's tables is refused before anything is written.

Opening a store creates tables, adds columns and switches a SQLite file to WAL mode. Pointed
by mistake at another program's database (a typo in `accessor.endpoint`, a shared folder),
that would alter a file that is not ours, silently, and a table of the same name as one of
our models would even be taken for ours. So a SQLite file that has tables must carry the
runtime's schema marker (the `xos_runtime_meta` table) to be opened; the check reads the
file in read-only mode, so a refused file is left exactly as it was.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse

from sqlalchemy.engine import make_url

from xos_runtime.exceptions import StoreError
from xos_runtime.store.schema import META_TABLE
from xos_runtime.store.sqlstore import normalise_url

__all__ = ["refuse_foreign_sqlite"]


def refuse_foreign_sqlite(endpoint: str) -> None:
    """Raise `StoreError` if `endpoint` names an existing SQLite file that is not a store."""
    url = make_url(normalise_url(endpoint))
    if url.get_backend_name() != "sqlite":
        return
    path = url.database
    if not path or path == ":memory:" or not os.path.isfile(path) or not os.path.getsize(path):
        return
    where = f"accessor.endpoint {endpoint}"
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{where}: {path} is not a SQLite store: {exc}") from None
    tables = sorted(str(name) for (name,) in rows)
    if tables and META_TABLE not in tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreError(
            f"{where}: {path} holds tables that are not xos-runtime's ({shown}) and no "
            f"{META_TABLE} table; refusing to change it (use a new file for the store)"
        )
