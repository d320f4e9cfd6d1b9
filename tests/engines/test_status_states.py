"""The state rule of `status`, `/metrics` and the status page, in SQL, on both databases."""

from __future__ import annotations

import sqlalchemy as sa

from xos_runtime.engines.register import read_register, version_of
from xos_runtime.engines.status import (
    collect_status,
    count_states,
    failure_state,
    held_back_by,
    state_column,
)


def test_every_state_counted_by_the_database(make_runtime, engine_steps, clock, store_url):
    rt = make_runtime(store_url=store_url)
    acc = rt.accessor
    ok = acc.Site.objects.create(name="ok")
    bad = acc.Site.objects.create(name="bad", behaviour="fail")
    acc.Site.objects.create(name="later", behaviour="defer")
    acc.Site.objects.create(name="meh", behaviour="innocuous")
    acc.Site.objects.create(name="never", behaviour="permanent")
    held = acc.Slice.objects.create(name="held", site=bad)
    gone = acc.Site.objects.create(name="gone", behaviour="fail-delete")
    rt.engines()[0].run_pass()
    acc.Site.objects.get(id=gone.id).delete()
    new = acc.Site.objects.create(name="new")  # after the pass: pending
    # a register that is not JSON reads as empty, as `read_register` reads it
    store = acc.store
    table = store.table("Site")
    with store.engine.begin() as conn:
        conn.execute(
            table.update().where(table.c.id == new.id).values(backend_register='{"failures": x')
        )

    report = collect_status(acc, clock.now)
    states = {(o.model, o.name): o.state for o in report.objects}
    assert states == {
        ("Site", "bad"): "error",
        ("Site", "later"): "deferred",
        ("Site", "meh"): "backing_off",
        ("Site", "never"): "error",
        ("Slice", "held"): "held_back",
        ("Site", "gone"): "deleting",
        ("Site", "new"): "pending",
    }
    assert ("Site", ok.name) not in states
    counts = count_states(acc, clock.now)
    assert counts == report.counts
    assert counts["Site"] == {
        "total": 7,
        "ok": 1,
        "error": 2,
        "deferred": 1,
        "backing_off": 1,
        "deleting": 1,
        "pending": 1,
    }
    assert counts["Slice"] == {"total": 1, "held_back": 1}
    (held_status,) = [o for o in report.objects if o.name == "held"]
    assert held_back_by(held_status.backend_status) == ("Site", bad.id)
    assert held.id and held_back_by("boom") is None

    assert_sql_agrees_with_failure_state(acc, clock.now)
    # a limit per table takes what needs a person first
    first = collect_status(acc, clock.now, limit=3)
    assert [(o.model, o.state) for o in first.objects] == [
        ("Site", "error"),
        ("Site", "error"),
        ("Site", "backing_off"),
        ("Slice", "held_back"),
    ]
    assert first.counts == report.counts
    clock.advance(3600)  # the backoff is over: pending again, not backing off
    assert count_states(acc, clock.now)["Site"].get("backing_off", 0) == 0
    assert_sql_agrees_with_failure_state(acc, clock.now)


def assert_sql_agrees_with_failure_state(acc, now: float) -> None:
    """The SQL rule and `failure_state` (its Python form, for `plan`) name every failed
    object of the store alike."""
    store = acc.store
    checked = 0
    with store.read() as conn:
        for table in store.schema.tables.values():
            query = sa.select(table, state_column(table, store.dialect, now))
            for row in conn.execute(query).mappings():
                if row["deleted"] or row["backend_status"].startswith("Failed due to"):
                    continue
                register = read_register(row["backend_register"])
                if not register.get("failures"):
                    continue
                version = version_of(row["updated"], row["changed_by_policy"])
                python = failure_state(register, row["backend_code"] or 0, version, now)
                assert row["xos_runtime_state"] == (python or "pending"), dict(row)
                checked += 1
    assert checked >= 4


def test_counting_is_one_statement_whatever_the_number_of_rows(make_runtime, engine_steps, clock):
    rt = make_runtime()
    acc = rt.accessor
    acc.Site.objects.bulk_create([{"name": f"s{i}"} for i in range(50)])
    acc.Slice.objects.create(name="sl", site=acc.Site.objects.first())
    statements: list[str] = []

    def seen(conn, cursor, statement, *_args) -> None:
        statements.append(statement)

    sa.event.listen(acc.store.engine, "before_cursor_execute", seen)
    try:
        counts = count_states(acc, clock.now)
    finally:
        sa.event.remove(acc.store.engine, "before_cursor_execute", seen)
    assert counts == {"Site": {"total": 50, "pending": 50}, "Slice": {"total": 1, "pending": 1}}
    assert [s for s in statements if "count(" in s.lower()] == statements[-1:]
    assert sum("GROUP BY" in s for s in statements) == 1
