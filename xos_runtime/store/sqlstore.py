"""The SQL store: tables, transactions and row-level operations over SQLAlchemy Core.

SQLite (the embedded default) and PostgreSQL are two dialects of the same code. This module
knows rows, not objects: validation and change tracking live in `objects.py`, queries in
`query.py`. Every write is one transaction, and a committed write publishes the models it
touched on the store's `ChangeHub`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import operator
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from xos_runtime.exceptions import StoreError
from xos_runtime.models.definitions import ModelSet
from xos_runtime.models.loader import validate_models
from xos_runtime.store import wire
from xos_runtime.store.health import StoreHealth, busy
from xos_runtime.store.notify import ChangeHub, channel_dir_for
from xos_runtime.store.pgnotify import PgListener, channel_for, new_token, payload
from xos_runtime.store.schema import META_TABLE, Schema, check_evolution
from xos_runtime.store.tracking import MonotonicClock

if TYPE_CHECKING:
    from xos_runtime.store.eventlog import EventLog

Row = dict[str, Any]

#: Parameter sets up to which `execute_each` runs a statement once per set.
_EACH_UP_TO = 8

#: PostgreSQL advisory lock held while a process creates or evolves the schema.
_SCHEMA_LOCK = 0x58_52_54_53  # "XRTS"


def normalise_url(endpoint: str) -> str:
    """Turn an `accessor.endpoint` into a SQLAlchemy URL, refusing what no backend serves."""
    if endpoint.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + endpoint.split("://", 1)[1]
    if endpoint.startswith(("sqlite:", "postgresql+")):
        return endpoint
    if endpoint.startswith(("http://", "https://")):
        raise StoreError(
            f"store endpoint {endpoint!r} is a core, not a database: open it with "
            "xos_runtime.connect() (or a config whose accessor.endpoint names it)"
        )
    raise StoreError(
        f"store endpoint {endpoint!r} is not a store URL; expected sqlite:///path.db, "
        "sqlite:// (in memory) or postgresql://user@host/db"
    )


@attrs.frozen
class KeyedWrite:
    """An UPDATE of `set_columns` (or, without them, a DELETE) of the rows of `table` whose
    `keys` columns match one of `rows` (dicts of key and new values) and whose columns equal
    `where`: run by `SqlStore.write_by_keys`, or with others by `SqlStore.write_batch`."""

    table: sa.Table
    keys: tuple[str, ...]
    rows: list[dict[str, Any]]
    set_columns: tuple[str, ...] = ()
    where: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns each row gives: the keys, then the values to set."""
        return (*self.keys, *self.set_columns)

    @property
    def shape(self) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """What its SQL depends on (not the rows, nor the values of `where`)."""
        return (self.table.name, self.keys, self.set_columns, tuple(sorted(self.where)))


def _recordset_params(prefix: str, write: KeyedWrite, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of a recordset statement (`SqlStore._recordset_sql`): the rows as one
    JSON text (encoded by orjson: a tenth of the cost of binding one array per column, and
    a sixth of the standard library's), and the values of the last key column as an
    array."""
    params = {f"{prefix}{c}": v for c, v in write.where.items()}
    params[f"{prefix}rows"] = wire.dumps(rows).decode("utf-8")
    last = write.keys[-1]
    params[f"{prefix}keyset"] = sorted({row[last] for row in rows})
    return params


#: Longest time (seconds) opening a store waits while another process holds it busy.
OPEN_BUSY_WAIT = 30.0


def param_prefix(columns: Iterable[Any]) -> str:
    """A prefix for bound-parameter names that no column name of the table starts with.

    SQLAlchemy's executemany binds by name, and a `WHERE id = :x` parameter named like a
    column that is also SET (a link named `b` makes the column `b_id`) would be taken as
    that column's value. Column names are xproto identifiers, so a prefix is lengthened
    with underscores until no column starts with it.
    """
    names = [str(c) for c in columns]
    prefix = "xrt_"
    while any(n.startswith(prefix) for n in names):
        prefix += "_"
    return prefix


def _kept(stored: ModelSet, models: ModelSet) -> ModelSet:
    """`models`, and the stored models they do not define anew (`SqlStore(keep_stored=)`)."""
    kept = {m.name: m for m in stored if m.name not in models}
    merged = ModelSet({**kept, **models.models})
    validate_models(merged)
    return merged


class SqlStore:
    """An open database holding the objects of a `ModelSet`.

    `models` None opens the store with the definitions it remembers; given models are
    reconciled with the remembered ones (new models and fields are added, destructive changes
    refused). `clock` is injectable so that tests control timestamps.
    """

    def __init__(
        self,
        endpoint: str,
        models: ModelSet | None = None,
        *,
        clock: Callable[[], float] | None = None,
        dry_run: bool = False,
        models_optional: bool = False,
        keep_stored: bool = False,
    ):
        """`dry_run` checks that `models` fit the stored data without changing anything:
        no file, table, column or remembered definition is created (for `xos-runtime check`).
        `models_optional`: with `models` None, a store that remembers none is opened (and
        created) with no models, for what needs only the runtime's own tables (`events
        publish`), instead of refused.
        `keep_stored`: the models the store remembers stay, beside `models` (which win where
        both define one): for the core, which serves the models synchronizers loaded too.
        """
        self.endpoint = endpoint
        self.dry_run = dry_run
        self.models_optional = models_optional
        self.keep_stored = keep_stored
        self.url = make_url(normalise_url(endpoint))
        # Timestamps must never repeat: wrap whatever clock is given (tests pass fake ones).
        self.clock: Callable[[], float] = (
            clock if isinstance(clock, MonotonicClock) else MonotonicClock(clock or time.time)
        )
        self.dialect = self.url.get_backend_name()
        self._lock: threading.RLock | None = None
        #: Outages of this store, logged once when they start and once when they end.
        self.health = StoreHealth(self.url.render_as_string(hide_password=True))
        #: A read snapshot the current thread is inside (see `snapshot()`), and the thread's
        #: bookkeeping connection (see `_bookkeeping()`).
        self._local = threading.local()
        self._bookkeeping_conns: list[Connection] = []
        #: Driver SQL of the bookkeeping statements (`execute_each`), by statement.
        self._compiled_sql: dict[Hashable, tuple[str, list[str] | None, dict[str, Any]]] = {}
        #: `write_by_keys` statements by shape: driver SQL over a JSON recordset
        #: (PostgreSQL), else the statement run per row and its parameter prefix.
        self._recordset_sqls: dict[Hashable, str] = {}
        self._by_keys_stmts: dict[Hashable, tuple[str, Any]] = {}
        #: The bind processors of a table's columns that have one, by (table, columns).
        self._bind_processors: dict[Hashable, dict[str, Callable[[Any], Any]]] = {}
        #: `select_many` statements, with the result processors of the columns that need
        #: one (by position).
        self._many_stmts: dict[Hashable, tuple[Any, dict[int, Callable[[Any], Any]]]] = {}
        self.engine = self._create_engine()
        self.hub = self._make_hub()
        try:
            self.models = self._open_models(models)
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            self.close()
            reason = getattr(exc, "orig", None) or exc
            raise StoreError(
                f"accessor.endpoint {self.url.render_as_string(hide_password=True)}: "
                f"cannot open the store: {str(reason).strip().splitlines()[0]}"
            ) from exc
        except Exception:
            self.close()
            raise
        self.schema = Schema(self.models)

    # -- engine and transactions ------------------------------------------------------------

    def _create_engine(self) -> Engine:
        if self.dialect != "sqlite":
            return sa.create_engine(self.url, pool_pre_ping=True, future=True)
        database = self.url.database
        if not database or database == ":memory:":
            # One shared connection: an in-memory database exists only inside it.
            self._lock = threading.RLock()
            engine = sa.create_engine(
                "sqlite://",
                poolclass=StaticPool,
                connect_args={"check_same_thread": False, "isolation_level": None},
            )
        else:
            engine = sa.create_engine(
                self.url, connect_args={"timeout": 30, "isolation_level": None}
            )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if database and database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the lock up front, so two writers queue on busy_timeout instead of
            # failing on a read-to-write lock upgrade.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("xrt_write") else "BEGIN")

        return engine

    def _make_hub(self) -> ChangeHub:
        """Local sockets for a SQLite file (one machine); LISTEN/NOTIFY for PostgreSQL."""
        if self.dialect == "sqlite":
            db = self.url.database
            return ChangeHub(channel_dir_for(db) if db and db != ":memory:" else None)
        if self.dialect != "postgresql":
            return ChangeHub(None)
        # One channel per database and schema: connection options that do not change which
        # data the URL reaches (the client's name) must not split the processes' channels.
        same_data = self.url.difference_update_query(["application_name"])
        self.pg_channel = channel_for(same_data.render_as_string(hide_password=True))
        dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)

        def connect() -> object:
            import psycopg

            return psycopg.connect(dsn, autocommit=True)

        #: A new LISTEN connection (for the event log's channel too, `eventlog.py`).
        self.pg_connect = connect
        self.pg_token = new_token()

        def listener(deliver: Callable[[set[str]], None]) -> PgListener:
            return PgListener(connect, self.pg_channel, deliver, self.pg_token)

        return ChangeHub(None, listener=listener)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        snap = getattr(self._local, "snapshot", None)
        if snap is not None:
            yield snap  # inside `snapshot()`: every read sees the same committed state
            return
        joined = getattr(self._local, "atomic", None)
        if joined is not None:
            yield joined[0]  # inside `atomic()`: reads see what the block wrote
            return
        with self._reporting(), self._maybe_locked(), self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def reading(self, conn: Connection | None) -> Iterator[Connection]:
        """`conn` when the caller is inside a transaction of its own, else a `read()`."""
        if conn is not None:
            yield conn
            return
        with self.read() as c:
            yield c

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Every write of this thread inside the block is one transaction, with one change
        notification when it commits; an exception inside rolls all of it back and goes on.
        Reads inside see what the block wrote. A nested block joins the outer one. For
        scripts that write many objects (`ModelAccessor.atomic`)."""
        if getattr(self._local, "atomic", None) is not None:
            yield
            return
        touched: set[str] = set()
        with self.write(touched) as conn:
            self._local.atomic = (conn, touched)
            try:
                yield
            finally:
                self._local.atomic = None

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read of this thread inside the block sees one committed state of the store.

        For the engines' view of what is pending: queries made one after another (one per
        step, then the rows their links lead to) would otherwise each see a later state, and
        a dependency committed between two of them could be missed while its dependent is
        seen. PostgreSQL gives a REPEATABLE READ transaction; SQLite a read transaction (in
        WAL mode its snapshot is fixed by its first read); the in-memory store holds its lock.
        Writes inside the block are not allowed (they would not see the snapshot anyway).
        """
        if getattr(self._local, "snapshot", None) is not None:
            yield  # nested: the outer snapshot holds
            return
        with self._reporting(), self._maybe_locked(), self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                self._local.snapshot = conn
                try:
                    yield
                finally:
                    self._local.snapshot = None

    @contextlib.contextmanager
    def write(
        self, touched: set[str] | None = None, *, durable: bool = True
    ) -> Iterator[Connection]:
        """A write transaction; on commit, publishes the model names added to `touched`.

        `durable=False` is for the engines' bookkeeping (outcomes, claims): on PostgreSQL
        the commit does not wait for the disk (`synchronous_commit = off`), so that a
        process storing outcomes every few objects is not bound by fsync. The transaction is
        visible to everyone at once and survives a crash of the runtime; only a crash of the
        database server itself can lose its last fraction of a second, which the engines
        redo (objects sync again, idempotently). User data is always written durably.
        """
        touched = touched if touched is not None else set()
        joined = getattr(self._local, "atomic", None)
        if joined is not None:  # inside `atomic()`: its transaction, its notification
            conn, outer = joined
            yield conn
            outer.update(touched)
            return
        if not durable and self._lock is None:
            with self._reporting(), self._bookkeeping() as conn, conn.begin():
                yield conn
            if touched:
                self.hub.publish(touched)
            return
        with self._reporting(), self._maybe_locked(), self.engine.connect() as conn:
            conn.info["xrt_write"] = True
            try:
                with conn.begin():
                    yield conn
                    if touched and self.dialect == "postgresql":
                        # delivered by PostgreSQL on commit, to other processes' listeners
                        note = payload(self.pg_token, touched)
                        conn.execute(sa.select(sa.func.pg_notify(self.pg_channel, note)))
            finally:
                conn.info.pop("xrt_write", None)
        if touched:
            self.hub.publish(touched)

    @contextlib.contextmanager
    def _bookkeeping(self, *, autocommit: bool = False) -> Iterator[Connection]:
        """This thread's own connection for bookkeeping writes, kept open: the engines write
        outcomes every few objects, and a pool checkout (with its liveness ping, on
        PostgreSQL) per write would cost more than the write. On PostgreSQL its session does
        not wait for the disk on commit (see `write`); with `autocommit`, a second one whose
        statements commit by themselves (`write_batch`). A connection that failed is closed
        and replaced."""
        slot = "bookkeeping_autocommit" if autocommit else "bookkeeping"
        conn: Connection | None = getattr(self._local, slot, None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self.engine.connect()
            if autocommit:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.info["xrt_write"] = True  # SQLite: its transactions take the write lock first
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SET synchronous_commit TO OFF")
                conn.commit()
            setattr(self._local, slot, conn)
            # kept for `close()`; those closed after a failure are forgotten here
            self._bookkeeping_conns = [c for c in self._bookkeeping_conns if not c.closed]
            self._bookkeeping_conns.append(conn)
        try:
            yield conn
        except BaseException:
            setattr(self._local, slot, None)
            with contextlib.suppress(Exception):
                conn.close()
            raise

    @contextlib.contextmanager
    def _reporting(self) -> Iterator[None]:
        """Tell `health` how each transaction went (one log line per outage, not per try)."""
        try:
            yield
        except sa.exc.DBAPIError as exc:
            self.health.failed(exc)
            raise
        self.health.succeeded()

    def execute_each(
        self, conn: Connection, key: Hashable, stmt: Any, params: list[dict[str, Any]]
    ) -> None:
        """Run `stmt` once per parameter set, on the driver's cursor of `conn`.

        For the engines' bookkeeping statements, which run every few objects: the SQL is
        compiled once per `key` (a name for the statement that stays the same while the
        statement does), and each execution skips SQLAlchemy's per-call work
        (about half the CPU of a small statement). On PostgreSQL a few sets run as separate
        executions (psycopg's executemany enters pipeline mode, which costs more than it
        saves for two or three rows). Driver errors are raised as SQLAlchemy's, so that
        `transient()` and the store's health see them as for any other statement.
        """
        if not params:
            return
        sql, order, fixed = self._compiled(key, stmt)
        params = [{**fixed, **p} for p in params] if fixed else params
        with self._driver_cursor(conn, sql, params) as cursor:
            if order is None:  # named parameters (psycopg)
                if len(params) > _EACH_UP_TO:
                    cursor.executemany(sql, params)
                else:
                    for one in params:
                        cursor.execute(sql, one)
            else:
                cursor.executemany(sql, [tuple(p[k] for k in order) for p in params])

    @contextlib.contextmanager
    def _driver_cursor(self, conn: Connection, sql: str, params: Any) -> Iterator[Any]:
        """A cursor of the driver under `conn`; driver errors are raised as SQLAlchemy's, so
        that `transient()` and the store's health see them as for any other statement."""
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        error = self.engine.dialect.loaded_dbapi.Error
        try:
            yield cursor
        except error as exc:
            lost = self.engine.dialect.is_disconnect(exc, raw, cursor)
            raise sa.exc.DBAPIError.instance(
                sql, params, exc, error, connection_invalidated=lost
            ) from exc
        finally:
            cursor.close()

    def ids_match(self, column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
        """`column` is one of the ids of the bound parameter `name`, whose value is
        `ids_value(ids)`: the ids as one parameter (a JSON array in SQLite, an array in
        PostgreSQL), so that a statement over a few hundred ids is compiled once and binds
        one value instead of one per id."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import ARRAY

            return column == sa.any_(sa.bindparam(name, type_=ARRAY(sa.BigInteger)))
        each = sa.func.json_each(sa.bindparam(name, type_=sa.String)).table_valued("value")
        return column.in_(sa.select(each.c.value))

    def ids_value(self, ids: Iterable[int]) -> Any:
        """The value of an `ids_match` parameter."""
        return list(ids) if self.dialect == "postgresql" else json.dumps(list(ids))

    def columns_by_id(
        self, conn: Connection, root: str, ids: Sequence[int], columns: tuple[str, ...]
    ) -> list[tuple[Any, ...]]:
        """`columns` of the rows of `root`'s table with these ids (in no order; missing ids
        are absent), as the driver returns them (SQLite gives bools as 0 and 1).

        For the engines' re-read of what they just claimed, a few hundred rows every batch:
        one statement per table and columns (`ids_match`), on the driver's cursor of `conn`.
        """
        if not ids:
            return []
        key = ("by-id", root, columns)
        found = self._compiled_sql.get(key)
        if found is None:  # (a statement is built only to be compiled: it costs as much)
            table = self.table(root)
            stmt = sa.select(*(table.c[c] for c in columns))
            found = self._compiled(key, stmt.where(self.ids_match(table.c.id, "ids")))
        sql, order, _fixed = found
        value = self.ids_value(ids)
        params: Any = {"ids": value} if order is None else (value,)
        with self._driver_cursor(conn, sql, params) as cursor:
            cursor.execute(sql, params)
            return [tuple(r) for r in cursor.fetchall()]

    def driver_rows(
        self, conn: Connection, key: Hashable, stmt: Any, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of `stmt` (none for a statement that returns none) run once with
        `params` on the driver's cursor of `conn`, values as the driver gives them.

        For the engines' statements over all of a pass's objects (claiming them): compiled
        once per `key`, as `execute_each` does; a value needs no bind processor (ints,
        strings, bools and the `ids_value` of a JSON array do not).
        """
        sql, order, fixed = self._compiled(key, stmt)
        values = {**fixed, **params} if params else fixed
        bound: Any = values if order is None else tuple(values[k] for k in order)
        with self._driver_cursor(conn, sql, bound) as cursor:
            cursor.execute(sql, bound)
            return cursor.fetchall() if cursor.description is not None else []

    def select_many(
        self, model: str, key: Hashable, where: Sequence[sa.ColumnElement[bool]]
    ) -> tuple[tuple[str, ...], list[Sequence[Any]]]:
        """`select_rows` of every column, in id order, for reads of a whole pass of objects:
        on the driver's cursor, with the statement compiled once per `key` (the caller's name
        for `where`, which must not change while the key stays the same).

        Values come as the driver gives them, except for columns whose type converts them
        (a uint64), which SQLAlchemy's processor converts; bools stay as the driver gives
        them (0 and 1 in SQLite): model objects convert those.
        """
        table = self.table(model)
        full = ("select-many", model, key)
        found = self._many_stmts.get(full)
        if found is None:
            q = sa.select(table).where(*self.family_filter(model), *where).order_by(table.c.id)
            dialect = self.engine.dialect
            convert: dict[int, Callable[[Any], Any]] = {}
            for i, column in enumerate(table.columns):
                if isinstance(column.type, sa.Boolean):
                    continue
                f = column.type.result_processor(dialect, None)
                if f is not None:
                    convert[i] = f
            found = self._many_stmts[full] = (q, convert)
        stmt, processors = found
        keys = tuple(c.name for c in table.columns)
        with self.read() as conn:
            rows = self.driver_rows(conn, full, stmt)
        if not processors:
            return keys, list(rows)
        converted: list[Sequence[Any]] = []
        for row in rows:
            listed = list(row)
            for i, convert_one in processors.items():
                listed[i] = convert_one(listed[i])
            converted.append(listed)
        return keys, converted

    def write_by_keys(self, conn: Connection, write: KeyedWrite) -> None:
        """Run `write` inside `conn`: the engines' outcome writes and claim releases, every
        few objects.

        On PostgreSQL, one statement whatever the number of rows: the rows go as one JSON
        parameter, read with `json_to_recordset` (one round trip instead of one per row, and
        no per-value binding in the client). Elsewhere the statement
        runs once per row on the driver's cursor (`execute_each`). Rows are written in the
        order given: callers sort them, so that two processes lock rows in the same order.
        """
        if not write.rows:
            return
        table, where, shape = write.table, write.where, write.shape
        if self.dialect != "postgresql" or len(write.rows) == 1:
            found = self._by_keys_stmts.get(shape)
            if found is None:
                p = param_prefix(table.c.keys())
                match = [table.c[k] == sa.bindparam(f"{p}{k}") for k in (*write.keys, *where)]
                stmt: Any = sa.update(table) if write.set_columns else sa.delete(table)
                stmt = stmt.where(*match)
                if write.set_columns:
                    stmt = stmt.values({c: sa.bindparam(f"{p}{c}") for c in write.set_columns})
                found = self._by_keys_stmts[shape] = (p, stmt)
            p, stmt = found
            key = ("by-keys", *shape)
            sql, order, fixed = self._compiled(key, stmt)
            if order is not None and not fixed:  # positional (SQLite): tuples straight away
                values = self._positional(write, [n[len(p) :] for n in order])
                with self._driver_cursor(conn, sql, values) as cursor:
                    cursor.executemany(sql, values)
                return
            rows = self._bound_rows(write)
            each = [{f"{p}{k}": v for k, v in (dict(where) | row).items()} for row in rows]
            self.execute_each(conn, key, stmt, each)
            return
        rows = self._bound_rows(write)
        recordset = self._recordset_sqls.get(shape)
        if recordset is None:
            recordset = self._recordset_sqls[shape] = self._recordset_sql(write)
        params = _recordset_params("", write, rows)
        with self._driver_cursor(conn, recordset, params) as cursor:
            cursor.execute(recordset, params)

    def write_batch(self, writes: Sequence[KeyedWrite]) -> None:
        """Run `writes` (in order) as one atomic step: the engines' outcomes and claim
        releases of a flush that takes no new claims.

        On PostgreSQL, one statement (each write a data-modifying `WITH` part) on a
        connection in autocommit: one round trip instead of BEGIN, one per write and COMMIT.
        Elsewhere, one transaction of `write_by_keys`. Run again after a failure: the writes
        are idempotent (they set values and delete rows by key).
        """
        writes = [w for w in writes if w.rows]
        if not writes:
            return
        if self.dialect != "postgresql":
            if self._lock is not None or getattr(self._local, "atomic", None) is not None:
                with self.write(durable=False) as conn:
                    for w in writes:
                        self.write_by_keys(conn, w)
                return
            with self._reporting(), self._bookkeeping() as conn, self._driver_transaction(conn):
                for w in writes:
                    self.write_by_keys(conn, w)
            return
        shape = tuple(w.shape for w in writes)
        sql = self._recordset_sqls.get(shape)
        if sql is None:
            parts = [f"w{i} AS ({self._recordset_sql(w, f'w{i}_')})" for i, w in enumerate(writes)]
            sql = self._recordset_sqls[shape] = f"WITH {', '.join(parts)} SELECT 1"
        params: dict[str, Any] = {}
        for i, w in enumerate(writes):
            params.update(_recordset_params(f"w{i}_", w, self._bound_rows(w)))
        with (
            self._reporting(),
            self._bookkeeping(autocommit=True) as conn,
            self._driver_cursor(conn, sql, params) as cursor,
        ):
            cursor.execute(sql, params)

    @contextlib.contextmanager
    def _driver_transaction(self, conn: Connection) -> Iterator[None]:
        """A SQLite write transaction (`BEGIN IMMEDIATE` ... `COMMIT`) on the driver's
        connection under `conn`, for `write_batch`: it runs every few objects, and the
        transaction SQLAlchemy would wrap around it (its begin event, which sends the same
        `BEGIN IMMEDIATE` through `exec_driver_sql`, and its commit) cost more than the
        writes. Only statements on the driver's cursor may run inside (`write_by_keys`
        does so on SQLite): SQLAlchemy does not know of this transaction."""
        raw = conn.connection.dbapi_connection
        assert raw is not None and not conn.in_transaction()
        with self._driver_cursor(conn, "BEGIN IMMEDIATE", ()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if raw.in_transaction:
                with contextlib.suppress(Exception):
                    raw.rollback()
            raise
        with self._driver_cursor(conn, "COMMIT", ()) as cursor:
            cursor.execute("COMMIT")

    def _positional(self, write: KeyedWrite, names: list[str]) -> list[tuple[Any, ...]]:
        """The parameters of `write`'s statement, one tuple per row in the order `names` (its
        columns, `where` included), each value as SQLAlchemy would bind it: for a driver
        with positional parameters, without a dict per row."""
        where = write.where
        get = operator.itemgetter(*names) if len(names) > 1 else (lambda r: (r[names[0]],))
        processors = self._processors(write.table, tuple(names))
        convert = [(i, processors[c]) for i, c in enumerate(names) if c in processors]
        out = []
        for row in write.rows:
            values = get({**row, **where} if where else row)
            if convert:
                listed = list(values)
                for i, f in convert:
                    listed[i] = f(listed[i])
                values = tuple(listed)
            out.append(values)
        return out

    def _processors(
        self, table: sa.Table, columns: tuple[str, ...]
    ) -> dict[str, Callable[[Any], Any]]:
        """The bind processors of these columns that have one (found once per table and
        columns): what SQLAlchemy does to a value before the driver gets it."""
        key = (table.name, columns)
        found = self._bind_processors.get(key)
        if found is None:
            dialect = self.engine.dialect
            each = {c: table.c[c].type.bind_processor(dialect) for c in columns}
            found = self._bind_processors[key] = {c: f for c, f in each.items() if f}
        return found

    def _bound_rows(self, write: KeyedWrite) -> list[dict[str, Any]]:
        """The rows of `write` with each value as SQLAlchemy would send it to the driver (the
        columns' bind processors: a uint64 shifted into a BIGINT, a bool as an int in
        SQLite), found once per table and columns."""
        processors = self._processors(write.table, write.columns)
        if not processors:
            return write.rows
        return [row | {c: f(row[c]) for c, f in processors.items()} for row in write.rows]

    def _recordset_sql(self, write: KeyedWrite, prefix: str = "") -> str:
        """`write` as one statement over its rows sent as one JSON array of objects, read
        with `json_to_recordset` (PostgreSQL)."""
        table, keys, set_columns, where = write.table, write.keys, write.set_columns, write.where
        dialect = self.engine.dialect
        q = dialect.identifier_preparer.quote
        record = ", ".join(
            f"{q(c)} {table.c[c].type.compile(dialect=dialect)}" for c in write.columns
        )
        match = [f"t.{q(k)} = v.{q(k)}" for k in keys]
        # The rows' keys again, as an array: the planner cannot tell how many rows the
        # JSON holds (it guesses 100) and would scan the whole table for a few of them.
        match.append(f"t.{q(keys[-1])} = ANY(%({prefix}keyset)s)")
        match += [f"t.{q(c)} = %({prefix}{c})s" for c in where]
        if set_columns:
            sets = ", ".join(f"{q(c)} = v.{q(c)}" for c in set_columns)
            head = f"UPDATE {q(table.name)} AS t SET {sets} FROM"
        else:
            head = f"DELETE FROM {q(table.name)} AS t USING"
        source = f"json_to_recordset(%({prefix}rows)s::json) AS v({record})"
        return f"{head} {source} WHERE {' AND '.join(match)}"

    def _compiled(self, key: Hashable, stmt: Any) -> tuple[str, list[str] | None, dict[str, Any]]:
        """The driver SQL of `stmt`, its parameter order (None: named parameters), and the
        values the statement itself binds (literals in its WHERE clause)."""
        found = self._compiled_sql.get(key)
        if found is None:
            c = stmt.compile(dialect=self.engine.dialect)
            order = list(c.positiontup) if c.positiontup is not None else None
            fixed = {k: v for k, v in c.params.items() if v is not None}
            found = self._compiled_sql[key] = (c.string, order, fixed)
        return found

    def _maybe_locked(self) -> contextlib.AbstractContextManager[Any]:
        return self._lock if self._lock is not None else contextlib.nullcontext()

    @functools.cached_property
    def event_log(self) -> EventLog:
        """The embedded event bus's messages and consumer groups in this store (made on
        first use; every user in this process shares it, and with it its notifications)."""
        from xos_runtime.store.eventlog import EventLog  # it imports this module

        return EventLog(self)

    def evolve(self, models: ModelSet) -> None:
        """Take `models` as this open store's models from now on (the core loading a
        synchronizer's models): tables, columns and the remembered definitions change by the
        rules of opening, and what opening refuses is refused (`SchemaChangeRefused`),
        changing nothing. Model classes built before keep the old definitions: rebuild them
        (`ModelAccessor.evolve`)."""
        self.models = self._open_models(models)
        self.schema = Schema(self.models)
        for cache in (
            self._compiled_sql,
            self._recordset_sqls,
            self._by_keys_stmts,
            self._bind_processors,
        ):
            cache.clear()

    def close(self) -> None:
        log = self.__dict__.get("event_log")
        if log is not None:
            log.close()
        self.hub.close()
        for conn in self._bookkeeping_conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._bookkeeping_conns.clear()
        self.engine.dispose()

    # -- models remembered by the store -------------------------------------------------------

    def _open_models(self, models: ModelSet | None) -> ModelSet:
        """`_reconcile`, tried again while the store answers busy: a SQLite file that another
        process is creating (a `run` and an `objects create` started together) can refuse a
        connection's first statements at once, busy timeout or not."""
        deadline = time.monotonic() + OPEN_BUSY_WAIT
        pause = 0.02
        while True:
            try:
                return self._reconcile(models)
            except sa.exc.DBAPIError as exc:
                if not busy(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def _reconcile(self, models: ModelSet | None) -> ModelSet:
        meta = sa.Table(
            META_TABLE,
            sa.MetaData(),
            sa.Column("key", sa.String(200), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        if self.dry_run:
            return self._plan(meta, models)
        with self.write() as conn:
            if self.dialect == "postgresql":
                # Processes starting together must not create the same tables at once.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            meta.create(conn, checkfirst=True)
            rows = conn.execute(
                sa.select(meta.c.key, meta.c.value).where(meta.c.key.in_(("models", "schema")))
            )
            recorded = {str(key): str(value) for key, value in rows}
            stored_text = recorded.get("models")
            stored = ModelSet.from_json(stored_text) if stored_text else None
            if models is None:
                if stored is None and not self.models_optional:
                    raise StoreError(
                        f"store {self.endpoint}: it holds no model definitions yet; open it once "
                        "with models (a config with models_dir or plugins that define models)"
                    )
                models = stored if stored is not None else ModelSet()
            elif self.keep_stored and stored is not None:
                models = _kept(stored, models)
            if stored is not None and stored.to_json() != models.to_json():
                counts = self._row_counts(conn, stored)
                check_evolution(stored, models, counts)
            schema = Schema(models)
            digest = schema.digest()
            text = models.to_json()
            if stored_text == text and recorded.get("schema") == digest:
                return models  # the tables are as these models want them
            schema.metadata.create_all(conn, checkfirst=True)
            self._add_missing_columns(conn, schema)
            conn.execute(sa.delete(meta).where(meta.c.key.in_(("models", "schema"))))
            conn.execute(
                sa.insert(meta),
                [{"key": "models", "value": text}, {"key": "schema", "value": digest}],
            )
        return models

    def _plan(self, meta: sa.Table, models: ModelSet | None) -> ModelSet:
        """What `_reconcile` would do, refusing what it would refuse, changing nothing."""
        database = self.url.database
        missing_file = (
            self.dialect == "sqlite"
            and bool(database)
            and database != ":memory:"
            and not os.path.exists(str(database))
        )
        stored: ModelSet | None = None
        if not missing_file:
            with self.read() as conn:
                if sa.inspect(conn).has_table(META_TABLE):
                    text = conn.execute(
                        sa.select(meta.c.value).where(meta.c.key == "models")
                    ).scalar_one_or_none()
                    stored = ModelSet.from_json(text) if text else None
                if (
                    models is not None
                    and stored is not None
                    and stored.to_json() != models.to_json()
                ):
                    check_evolution(stored, models, self._row_counts(conn, stored))
        if models is None:
            if stored is None:
                raise StoreError(
                    f"store {self.endpoint}: it holds no model definitions yet; open it once "
                    "with models (a config with models_dir or plugins that define models)"
                )
            return stored
        return models

    def _row_counts(self, conn: Connection, models: ModelSet) -> dict[str, int]:
        counts: dict[str, int] = {}
        existing = set(sa.inspect(conn).get_table_names())
        for root in Schema(models).tables.values():
            if root.name not in existing:
                continue
            col: sa.ColumnClause[str] = sa.column("leaf_model_name")
            q = sa.select(col, sa.func.count()).select_from(sa.table(root.name)).group_by(col)
            for leaf, n in conn.execute(q):
                counts[leaf] = n
        return counts

    def _add_missing_columns(self, conn: Connection, schema: Schema) -> None:
        inspector = sa.inspect(conn)
        for root, table in schema.tables.items():
            have = {c["name"] for c in inspector.get_columns(table.name)}
            added = set()
            for column in table.columns:
                if column.name in have:
                    continue
                ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
                quoted = conn.dialect.identifier_preparer.quote(table.name)
                conn.exec_driver_sql(f"ALTER TABLE {quoted} ADD COLUMN {ddl}")
                added.add(column.name)
            if added:
                self._fill_defaults(conn, schema.models, root, table, added)
            for index in table.indexes:
                index.create(conn, checkfirst=True)

    @staticmethod
    def _fill_defaults(
        conn: Connection, models: ModelSet, root: str, table: sa.Table, added: set[str]
    ) -> None:
        """Give the rows a column was just added to the default of its field, model by
        model (a sub-model's field is its rows' alone): a required field added with a
        default must not read as None on the objects that were already there."""
        leaf = table.c.leaf_model_name
        for name in models.descendants(root):
            values = {
                f.name: f.default
                for f in models.all_fields(name)
                if f.name in added and f.has_default and f.default is not None
            }
            if not values:
                continue
            rows = leaf == name if name != root else sa.or_(leaf == name, leaf.is_(None))
            for column, default in values.items():
                conn.execute(
                    sa.update(table)
                    .where(rows, table.c[column].is_(None))
                    .values({column: default})
                )

    # -- row operations ------------------------------------------------------------------------

    def table(self, model: str) -> sa.Table:
        return self.schema.table(model)

    def family_filter(self, model: str) -> list[sa.ColumnElement[bool]]:
        """The condition that keeps a hierarchy table's rows to `model` and its sub-models."""
        table = self.table(model)
        if self.models.root(model) == model:
            return []
        return [table.c.leaf_model_name.in_(self.models.descendants(model))]

    def select(
        self,
        model: str,
        where: Sequence[sa.ColumnElement[bool]] = (),
        *,
        order_by: Sequence[sa.ColumnElement[Any]] = (),
        limit: int | None = None,
        offset: int | None = None,
        conn: Connection | None = None,
        columns: Sequence[str] = (),
    ) -> list[Row]:
        """Rows of `model` as dicts (every column, or only `columns`), by id unless ordered."""
        keys, rows = self.select_rows(
            model, where, order_by=order_by, limit=limit, offset=offset, conn=conn, columns=columns
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def select_rows(
        self,
        model: str,
        where: Sequence[sa.ColumnElement[bool]] = (),
        *,
        order_by: Sequence[sa.ColumnElement[Any]] = (),
        limit: int | None = None,
        offset: int | None = None,
        conn: Connection | None = None,
        columns: Sequence[str] = (),
    ) -> tuple[tuple[str, ...], list[Sequence[Any]]]:
        """`select`, as the column names and one sequence of values per row: for reads of
        many objects (a dict per row costs four times the memory and twice the time)."""
        table = self.table(model)
        q = sa.select(*(table.c[c] for c in columns)) if columns else sa.select(table)
        q = q.where(*self.family_filter(model), *where)
        q = q.order_by(*order_by) if order_by else q.order_by(table.c.id)
        if limit is not None:
            q = q.limit(limit)
        if offset:
            q = q.offset(offset)
        with self.reading(conn) as c:
            result = c.execute(q)
            return tuple(result.keys()), list(result)

    def count(self, model: str, where: Sequence[sa.ColumnElement[bool]] = ()) -> int:
        table = self.table(model)
        q = sa.select(sa.func.count()).select_from(table)
        q = q.where(*self.family_filter(model), *where)
        with self.read() as conn:
            return int(conn.execute(q).scalar_one())

    def exists(self, model: str, object_id: int, *, live: bool = True) -> bool:
        table = self.table(model)
        where = [table.c.id == object_id, *self.family_filter(model)]
        if live:
            where.append(table.c.deleted == sa.false())
        with self.read() as conn:
            return conn.execute(sa.select(table.c.id).where(*where)).first() is not None

    def insert(self, model: str, values: Mapping[str, Any], conn: Connection) -> int:
        (new_id,) = self.insert_many(model, [values], conn)
        return new_id

    def insert_many(
        self, model: str, rows: Sequence[Mapping[str, Any]], conn: Connection
    ) -> list[int]:
        """Insert `rows` (the same columns each) in few statements; their ids, in order."""
        if not rows:
            return []
        table = self.table(model)
        stmt = sa.insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return [int(i) for i in conn.execute(stmt, list(rows)).scalars()]

    def update(
        self,
        model: str,
        object_id: int,
        values: Mapping[str, Any],
        conn: Connection,
        *,
        bump_updated: float | None = None,
    ) -> float | None:
        """Write `values` to one row; with `bump_updated`, move `updated` forward too.

        Returns the row's new `updated` when it was bumped. Raises `StoreError` when the row
        is gone (purged by another process).
        """
        table = self.table(model)
        stmt = sa.update(table).where(table.c.id == object_id).values(**values)
        if bump_updated is not None:
            stmt = stmt.values(updated=self._later(table, bump_updated)).returning(table.c.updated)
            new = conn.execute(stmt).scalar_one_or_none()
            if new is None:
                raise StoreError(f"{model} id {object_id} no longer exists in the store")
            return float(new)
        result = conn.execute(stmt)
        if result.rowcount == 0:
            raise StoreError(f"{model} id {object_id} no longer exists in the store")
        return None

    @staticmethod
    def _later(table: sa.Table, now: float) -> sa.ColumnElement[Any]:
        """`now`, or just after the row's `updated` if that is not older.

        `updated` only ever grows, even if this process's clock is behind the writer of the
        previous version: pending-ness compares it with `enacted` and `policed`.
        """
        return sa.case((table.c.updated >= now, table.c.updated + MonotonicClock.STEP), else_=now)

    def soft_delete(self, model: str, object_id: int, conn: Connection) -> set[str]:
        """Mark one object and, transitively, the objects whose required links reach it.

        A write-protected object is left alone (XOS: its delete is a silent no-op); objects
        reached through the cascade are deleted even when write-protected, as in XOS. Returns
        the leaf model names that were marked.

        The deletion is a change: `updated` moves forward, so an object that was failing or
        backing off gets its `delete_record` (and `handle_delete`) at once.
        """
        now = self.clock()
        touched: set[str] = set()
        pending: list[tuple[str, int, bool]] = [(model, object_id, True)]
        while pending:
            name, oid, first = pending.pop()
            table = self.table(name)
            where = [table.c.id == oid, table.c.deleted == sa.false()]
            if first:
                where.append(table.c.write_protect == sa.false())
            leaf = conn.execute(
                sa.update(table)
                .where(*where)
                .values(deleted=True, enacted=None, policed=None, updated=self._later(table, now))
                .returning(table.c.leaf_model_name)
            ).scalar_one_or_none()
            if leaf is None:
                continue
            touched.add(leaf)
            for declaring, link in self.models.reverse_links(leaf):
                if not link.required:
                    continue
                dep = self.table(declaring)
                rows = conn.execute(
                    sa.select(dep.c.id, dep.c.leaf_model_name).where(
                        dep.c[link.column] == oid,
                        dep.c.deleted == sa.false(),
                        *self.family_filter(declaring),
                    )
                )
                pending.extend((str(r.leaf_model_name), int(r.id), False) for r in rows)
        return touched

    def purge(self, model: str, object_ids: Iterable[int], conn: Connection) -> None:
        """Remove rows of `model` for good; links that pointed at them become NULL."""
        ids = list(object_ids)
        if not ids:
            return
        table = self.table(model)
        conn.execute(sa.delete(table).where(table.c.id.in_(ids)))
        for declaring, link in self.models.reverse_links(model):
            dep = self.table(declaring)
            conn.execute(
                sa.update(dep).where(dep.c[link.column].in_(ids)).values({link.column: None})
            )

    def touched_names(self, leaves: Iterable[str]) -> set[str]:
        """Leaf models and their ancestors: what a subscriber observing a base model wants."""
        out: set[str] = set()
        for leaf in leaves:
            if leaf in self.models:
                out.update(self.models.ancestors(leaf))
        return out
