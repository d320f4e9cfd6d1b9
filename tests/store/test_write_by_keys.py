"""`SqlStore.write_by_keys`: the engines' batched UPDATE/DELETE by key, the same on every store
(on PostgreSQL one statement of unnested arrays, elsewhere one execution per row)."""

from __future__ import annotations

import sqlalchemy as sa

from xos_runtime.models import load_models
from xos_runtime.store.sqlstore import KeyedWrite, SqlStore, _recordset_params

# `b` and `xrt_id`: column names like the parameter names a naive statement would use
MODELS = [
    (
        "m.xproto",
        "message Thing { optional string name = 1; optional uint64 big = 2;"
        " optional bool flag = 3; optional string xrt_id = 4; optional int32 b = 5; }",
    )
]


def _rows(store: SqlStore) -> dict[int, dict]:
    t = store.table("Thing")
    with store.read() as conn:
        found = conn.execute(sa.select(t.c.id, t.c.name, t.c.big, t.c.flag, t.c.b)).mappings()
        return {r["id"]: dict(r) for r in found}


def test_updates_and_deletes_many_rows_by_key(store_url):
    store = SqlStore(store_url, load_models(MODELS))
    t = store.table("Thing")
    with store.write() as conn:
        for i in range(1, 6):
            conn.execute(sa.insert(t).values(id=i, name=f"t{i}", big=i, flag=False, b=i))
    updates = [
        {"id": 1, "name": None, "big": 2**64 - 1, "flag": True, "b": 10},
        {"id": 2, "name": "two", "big": 0, "flag": True, "b": 20},
        {"id": 4, "name": "four", "big": None, "flag": False, "b": 40},
    ]
    with store.write() as conn:
        store.write_by_keys(conn, KeyedWrite(t, ("id",), updates, ("name", "big", "flag", "b")))
    rows = _rows(store)
    assert rows[1] == {"id": 1, "name": None, "big": 2**64 - 1, "flag": True, "b": 10}
    assert rows[2] == {"id": 2, "name": "two", "big": 0, "flag": True, "b": 20}
    assert rows[3] == {"id": 3, "name": "t3", "big": 3, "flag": False, "b": 3}  # untouched
    assert rows[4] == {"id": 4, "name": "four", "big": None, "flag": False, "b": 40}
    with store.write() as conn:  # delete where the key matches and so does `where`
        keys = [{"id": 2}, {"id": 3}, {"id": 5}]
        store.write_by_keys(conn, KeyedWrite(t, ("id",), keys, where={"name": "t3"}))
    assert sorted(_rows(store)) == [1, 2, 4, 5]
    with store.write() as conn:
        store.write_by_keys(conn, KeyedWrite(t, ("id",), [{"id": 1}, {"id": 5}]))
    assert sorted(_rows(store)) == [2, 4]
    store.close()


def test_a_batch_of_writes_is_one_step(store_url):
    store = SqlStore(store_url, load_models(MODELS))
    t = store.table("Thing")
    with store.write() as conn:
        for i in range(1, 5):
            conn.execute(sa.insert(t).values(id=i, name=f"t{i}", big=i, flag=False, b=i))
    set_name = KeyedWrite(
        t, ("id",), [{"id": 1, "name": "one"}, {"id": 3, "name": None}], ("name",)
    )
    set_big = KeyedWrite(t, ("id",), [{"id": 2, "big": 2**64 - 1, "flag": True}], ("big", "flag"))
    delete = KeyedWrite(t, ("id",), [{"id": 3}, {"id": 4}], where={"b": 4})
    nothing = KeyedWrite(t, ("id",), [])
    for _ in range(2):  # idempotent: a retry after a lost answer changes nothing more
        store.write_batch([set_name, set_big, delete, nothing])
        rows = _rows(store)
        assert sorted(rows) == [1, 2, 3]  # only the row matching `where` is deleted
        assert rows[1]["name"] == "one" and rows[3]["name"] is None
        assert rows[2]["big"] == 2**64 - 1 and rows[2]["flag"] is True
    store.close()


def test_a_few_rows_of_a_large_table_are_found_by_index_on_postgresql(pg_store_url):
    """The rows go as one JSON value whose size the planner cannot see: without the keys as
    an array too it scans the whole table for every few objects an engine writes."""
    store = SqlStore(pg_store_url, load_models(MODELS))
    t = store.table("Thing")
    with store.write() as conn:
        conn.execute(sa.insert(t), [{"id": i, "name": f"t{i}"} for i in range(1, 20_001)])
        conn.exec_driver_sql(f'ANALYZE "{t.name}"')
    write = KeyedWrite(t, ("id",), [{"id": 7, "name": "x"}, {"id": 9, "name": "y"}], ("name",))
    sql = store._recordset_sql(write)
    params = _recordset_params("", write, store._bound_rows(write))
    with store.read() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan" not in plan, plan
    with store.write() as conn:
        store.write_by_keys(conn, write)
    rows = _rows(store)
    assert (rows[7]["name"], rows[8]["name"], rows[9]["name"]) == ("x", "t8", "y")
    store.close()
