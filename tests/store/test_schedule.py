"""The shared schedule of interval jobs: each run taken by one owner, on SQLite and
PostgreSQL."""

from __future__ import annotations

from demo_models import demo_models

from xos_runtime.store import Schedule, SqlStore


def test_each_run_goes_to_one_owner_and_a_repeat_keeps_it(store_url: str) -> None:
    store = SqlStore(store_url, demo_models())
    try:
        a, b = Schedule(store, "a"), Schedule(store, "b")
        assert a.take("job", 100.0, 10.0) is True
        assert b.take("job", 100.0, 10.0) is False
        assert a.take("job", 100.0, 10.0) is False  # a plain take: the run is gone
        # a take that may repeat one whose answer was lost: the run is still its sender's
        assert a.take("job", 100.0, 10.0, idempotent=True) is True
        assert b.take("job", 100.0, 10.0, idempotent=True) is False  # not b's
        assert a.take("job", 105.0, 10.0, idempotent=True) is False  # another run: not due
        assert b.take("job", 110.1, 10.0, idempotent=True) is True
        assert a.take("job", 110.1, 10.0, idempotent=True) is False
    finally:
        store.close()
