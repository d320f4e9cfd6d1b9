"""Failed calls of event messages in the store: counted across store handles, dropped once
committed, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from demo_models import demo_models

from xos_runtime.store import Attempts, EventAttempts, SqlStore


def test_failures_are_counted_read_and_forgotten(store_url: str) -> None:
    store = SqlStore(store_url, demo_models())
    try:
        mine, other = EventAttempts(store, "g"), EventAttempts(store, "other")
        assert mine.failed(("t", 0, 5), "boom", 10.0) == 1
        assert mine.failed(("t", 0, 5), "boom again", 12.0) == 2
        assert mine.failed(("t", 1, 5), "elsewhere", 11.0) == 1
        assert mine.failed(("t", 0, 9), "later", 13.0) == 1
        assert other.failed(("t", 0, 5), "its own count", 14.0) == 1
        assert mine.load({("t", 0): (0, 8), ("u", 0): (0, 100)}) == {
            ("t", 0, 5): Attempts(2, "boom again", 12.0)
        }
        assert set(mine.load({("t", 0): (5, 9), ("t", 1): (5, 5)})) == {
            ("t", 0, 5),
            ("t", 0, 9),
            ("t", 1, 5),
        }
        mine.forget({("t", 0): 6})  # committed up to (excluding) 6
        assert set(mine.load({("t", 0): (0, 100), ("t", 1): (0, 100)})) == {
            ("t", 0, 9),
            ("t", 1, 5),
        }
        assert other.load({("t", 0): (0, 100)}) == {("t", 0, 5): Attempts(1, "its own count", 14.0)}
        assert mine.failed(("t", 0, 5), "delivered again after a reset", 15.0) == 1
    finally:
        store.close()


def test_concurrent_failures_of_one_message_all_count(store_url: str) -> None:
    SqlStore(store_url, demo_models()).close()  # create the schema once
    stores = [SqlStore(store_url, demo_models()) for _ in range(4)]
    errors: list[BaseException] = []

    def fail(store: SqlStore) -> None:
        try:
            for _ in range(10):
                EventAttempts(store, "g").failed(("t", 0, 1), "boom", 1.0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fail, args=(s,)) for s in stores]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        assert EventAttempts(stores[0], "g").load({("t", 0): (1, 1)})[("t", 0, 1)].attempts == 40
    finally:
        for s in stores:
            s.close()


def test_an_idempotent_repeat_of_a_failed_call_counts_once(store_url: str) -> None:
    """What a core runs for a remote engine, whose call may be sent again after a lost
    answer: the row already holding this error and next_run is that call's work."""
    store = SqlStore(store_url, demo_models())
    try:
        attempts = EventAttempts(store, "g")
        assert attempts.failed(("t", 0, 1), "boom", 10.5, idempotent=True) == 1
        assert attempts.failed(("t", 0, 1), "boom", 10.5, idempotent=True) == 1  # the repeat
        assert attempts.failed(("t", 0, 1), "boom", 12.5, idempotent=True) == 2
        assert attempts.failed(("t", 0, 1), "other", 12.5, idempotent=True) == 3
        assert attempts.failed(("t", 0, 1), "other", 12.5) == 4  # not idempotent: counted
    finally:
        store.close()
