"""A store that goes away and comes back is logged once each way, with the time it was gone."""

from __future__ import annotations

import sqlalchemy as sa
from loguru import logger

from xos_runtime.models import load_models
from xos_runtime.store import StoreHealth, transient
from xos_runtime.store.sqlstore import SqlStore

MODELS = [("m.xproto", "message Site { optional string name = 1; }")]


def _terminate(store: SqlStore) -> None:
    """Cut every connection of this store's pool on the server side."""
    admin = sa.create_engine(store.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    admin.dispose()


def test_a_cut_connection_is_logged_once_and_its_return_once(pg_store_url):
    store = SqlStore(pg_store_url, load_models(MODELS))
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")

    def bookkeeping_write() -> None:  # the engines' outcome writes: a connection kept open
        with store.write(durable=False) as conn:
            conn.exec_driver_sql("SELECT 1")

    try:
        bookkeeping_write()
        _terminate(store)
        try:
            bookkeeping_write()
            raise AssertionError("the cut connection went unnoticed")
        except sa.exc.DBAPIError as exc:
            assert transient(exc)
        bookkeeping_write()  # a new connection: the store is back
        bookkeeping_write()
    finally:
        logger.remove(sink)
        store.close()
    down = [x for x in lines if "unreachable" in x]
    back = [x for x in lines if "is back after" in x]
    assert len(down) == 1 and len(back) == 1, lines


def test_health_logs_one_line_per_outage_with_its_length() -> None:
    now = [100.0]
    health = StoreHealth("db", clock=lambda: now[0])
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")
    try:
        lost = sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        for _ in range(50):
            assert health.failed(lost)
        now[0] += 20
        health.succeeded()
        health.succeeded()
        assert not health.failed(sa.exc.IntegrityError("x", {}, Exception("duplicate key")))
    finally:
        logger.remove(sink)
    assert lines == [
        "store db unreachable: Exception: server closed the connection",
        "store db is back after 20.0s",
    ]


def test_a_statement_sqlite_refuses_is_not_retried(tmp_path):
    """A syntax error is an OperationalError in SQLite too: retrying it would loop forever."""
    store = SqlStore(f"sqlite:///{tmp_path}/s.db", load_models(MODELS))
    try:
        with store.write() as conn:
            conn.exec_driver_sql("SELEC 1")
    except sa.exc.OperationalError as exc:
        assert not transient(exc)
    else:
        raise AssertionError("the statement ran")
    try:
        with store.write() as conn:
            conn.exec_driver_sql('SELECT * FROM "no such table"')
    except sa.exc.OperationalError as exc:
        assert not transient(exc)
    else:
        raise AssertionError("the statement ran")
    store.close()
