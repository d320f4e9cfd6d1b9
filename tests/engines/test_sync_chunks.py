"""Quick calls go to the workers in chunks; a slow call in a chunk holds up nobody else."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from xos_runtime import SyncStep
from xos_runtime.engines import SyncEngine
from xos_runtime.engines.sync import engine as sync_engine
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
    timeout = 5.0  # a call that may be abandoned is never chunked


def _sync_engine(h: Harness) -> SyncEngine:
    [engine] = [e for e in h.runtime.engines() if isinstance(e, SyncEngine)]
    return engine


def _count_submits(engine: SyncEngine) -> list[object]:
    submitted: list[object] = []
    submit = engine.pool.submit

    def counting(key: object, fn: Any, timeout: float | None = None) -> None:
        submitted.append(key)
        submit(key, fn, timeout)  # type: ignore[arg-type]

    engine.pool.submit = counting  # type: ignore[method-assign]
    return submitted


def _create(h: Harness, names: list[str]) -> None:
    h.accessor.Item.objects.bulk_create([{"name": n} for n in names])


def test_quick_calls_go_in_chunks_each_object_once() -> None:
    CALLS.clear()
    with Harness([SyncItem], models=MODELS) as h:
        submitted = _count_submits(_sync_engine(h))
        _create(h, [f"warm{i}" for i in range(20)])
        h.run_until_idle()
        # one by one until the calls are known to be quick (the first has to return)
        assert not isinstance(submitted[0], sync_engine._Chunk)
        submitted.clear()
        _create(h, [f"item{i}" for i in range(400)])
        h.run_until_idle()
        assert len(submitted) <= 400 // 4  # chunks of up to CHUNK objects
        assert any(isinstance(k, sync_engine._Chunk) for k in submitted)
        assert set(CALLS.values()) == {1} and len(CALLS) == 420
        assert h.accessor.Item.objects.filter(backend_code=1).count() == 420


def test_calls_with_a_timeout_are_not_chunked() -> None:
    CALLS.clear()
    with Harness([TimedSyncItem], models=MODELS) as h:
        submitted = _count_submits(_sync_engine(h))
        _create(h, [f"item{i}" for i in range(60)])
        h.run_until_idle()
        _create(h, [f"more{i}" for i in range(60)])
        h.run_until_idle()
        assert len(submitted) == 120
        assert not any(isinstance(k, sync_engine._Chunk) for k in submitted)


def test_a_slow_call_does_not_hold_up_the_rest_of_its_chunk() -> None:
    CALLS.clear()
    RELEASE.clear()
    with Harness([SyncItem], models=MODELS, config={"sync": {"workers": 2}}) as h:
        _create(h, [f"warm{i}" for i in range(20)])
        h.run_until_idle()  # the calls are now known to be quick
        _create(h, ["slow", *(f"after{i}" for i in range(30))])
        passing = threading.Thread(target=h.run_until_idle, daemon=True)
        passing.start()
        try:
            deadline = time.monotonic() + 20
            while sum(1 for n in CALLS if n.startswith("after")) < 30:
                assert time.monotonic() < deadline, f"held up behind the slow call: {CALLS}"
                time.sleep(0.01)
            assert CALLS["slow"] == 1  # still in its call: the others did not wait for it
        finally:
            RELEASE.set()
            passing.join(30)
        assert set(CALLS.values()) == {1}
