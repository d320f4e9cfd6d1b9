"""Quick calls go to the workers in batches; a slow or hung call in a batch holds up nobody
else."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from xos_runtime import SyncStep
from xos_runtime.engines import SyncEngine
from xos_runtime.testing import Harness

MODELS = "message Item (XOSBase) { required string name = 1; }"

CALLS: Counter[str] = Counter()
RELEASE = threading.Event()


class SyncItem(SyncStep):
    observes = "Item"

    def sync_record(self, obj: Any) -> None:
        CALLS[obj.name] += 1
        if obj.name == "slow":
            RELEASE.wait(30)


class TimedSyncItem(SyncItem):
    timeout = 0.5


def _sync_engine(h: Harness) -> SyncEngine:
    [engine] = [e for e in h.runtime.engines() if isinstance(e, SyncEngine)]
    return engine


def _count_handovers(engine: SyncEngine) -> list[int]:
    """The number of calls of each hand-over to the pool (1: `submit`)."""
    sizes: list[int] = []
    pool = engine.pool
    submit, submit_batch = pool.submit, pool.submit_batch

    def one(key: Any, fn: Any, timeout: float | None = None) -> None:
        sizes.append(1)
        submit(key, fn, timeout)

    def batch(calls: Any, timeout: float | None = None) -> None:
        sizes.append(len(calls))
        submit_batch(calls, timeout)

    pool.submit, pool.submit_batch = one, batch  # type: ignore[method-assign]
    return sizes


def _create(h: Harness, names: list[str]) -> None:
    h.accessor.Item.objects.bulk_create([{"name": n} for n in names])


def test_quick_calls_go_in_batches_each_object_once() -> None:
    CALLS.clear()
    with Harness([SyncItem], models=MODELS) as h:
        sizes = _count_handovers(_sync_engine(h))
        _create(h, [f"warm{i}" for i in range(20)])
        h.run_until_idle()
        assert sizes[0] == 1  # one by one until the calls are known to be quick
        sizes.clear()
        _create(h, [f"item{i}" for i in range(400)])
        h.run_until_idle()
        assert sum(sizes) == 400 and len(sizes) <= 400 // 4 and max(sizes) > 1
        assert set(CALLS.values()) == {1} and len(CALLS) == 420
        assert h.accessor.Item.objects.filter(backend_code=1).count() == 420


def _wait_for(done: Any, what: str) -> None:
    deadline = time.monotonic() + 20
    while not done():
        assert time.monotonic() < deadline, f"{what}: {CALLS}"
        time.sleep(0.01)


def test_a_slow_call_does_not_hold_up_the_rest_of_its_batch() -> None:
    CALLS.clear()
    RELEASE.clear()
    with Harness([SyncItem], models=MODELS, config={"sync": {"workers": 2}}) as h:
        _create(h, [f"warm{i}" for i in range(20)])
        h.run_until_idle()  # the calls are now known to be quick
        _create(h, ["slow", *(f"after{i}" for i in range(30))])
        passing = threading.Thread(target=h.run_until_idle, daemon=True)
        passing.start()
        try:
            _wait_for(
                lambda: sum(1 for n in CALLS if n.startswith("after")) == 30,
                "held up behind the slow call",
            )
            assert CALLS["slow"] == 1  # still in its call: the others did not wait for it
        finally:
            RELEASE.set()
            passing.join(30)
        assert set(CALLS.values()) == {1}


def test_a_hung_call_in_a_batch_times_out_alone() -> None:
    CALLS.clear()
    RELEASE.clear()
    with Harness([TimedSyncItem], models=MODELS, config={"sync": {"workers": 2}}) as h:
        _create(h, [f"warm{i}" for i in range(20)])
        h.run_until_idle()
        _create(h, ["slow", *(f"after{i}" for i in range(30))])
        try:
            h.run_until_idle()
        finally:
            RELEASE.set()
        slow = h.accessor.Item.objects.get(name="slow")
        assert slow.backend_code == 2 and "timed out" in slow.backend_status
        assert h.accessor.Item.objects.filter(backend_code=1).count() == 50
        assert set(CALLS.values()) == {1}
