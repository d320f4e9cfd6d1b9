"""The worker pool: completions, errors, timeouts on a fake clock, abandoned calls, epochs.

Timeouts are driven by the pool's injected `monotonic` clock, so no test waits for one in
real time: a call "overruns" when the test advances the clock. Calls that must stay running
block on a `Gate`; tests wait for threads only through events or `wait_until` (a condition
with a deadline), never a fixed sleep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import pytest
from loguru import logger

from xos_runtime.engines.pool import Completion, WorkerPool

REAL_WAIT = 10.0  # the most any test waits for a thread, in real seconds


class Monotonic:
    """A monotonic clock that moves only when the test says so: by `advance`, or by `step`
    after each reading."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.step = 0.0

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Gate:
    """A call that signals when it starts and runs until the test opens the gate."""

    def __init__(self, result: Any = None):
        self.started = threading.Event()
        self.opened = threading.Event()
        self.result = result

    def __call__(self) -> Any:
        self.started.set()
        if not self.opened.wait(REAL_WAIT * 3):
            raise RuntimeError("gate never opened")
        return self.result

    def wait_started(self) -> None:
        assert self.started.wait(REAL_WAIT), "the call never started"


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a condition on other threads, failing after `REAL_WAIT` seconds."""
    pause = threading.Event()
    for _ in range(int(REAL_WAIT / 0.002)):
        if condition():
            return
        pause.wait(0.002)
    assert condition(), f"timed out waiting until {what}"


def next_completion(pool: WorkerPool, key: Hashable | None = None) -> Completion:
    """The next completion of the current epoch (of `key`, if given), waiting for it."""
    for _ in range(int(REAL_WAIT / 0.05)):
        done = pool.next_completion(0.05)
        if done is not None and (key is None or done.key == key):
            return done
    raise AssertionError(f"no completion{'' if key is None else f' of {key!r}'}")


@pytest.fixture
def clock() -> Monotonic:
    return Monotonic()


@pytest.fixture
def make_pool(clock: Monotonic) -> Iterator[Callable[..., WorkerPool]]:
    pools: list[WorkerPool] = []

    def make(size: int = 1, **kwargs: Any) -> WorkerPool:
        pool = WorkerPool(size, name="test-pool", monotonic=clock, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.shutdown()


@pytest.fixture
def gates() -> Iterator[Callable[..., Gate]]:
    made: list[Gate] = []

    def gate(result: Any = None) -> Gate:
        made.append(Gate(result))
        return made[-1]

    yield gate
    for g in made:
        g.opened.set()  # no thread outlives its test blocked on a gate


# -- completions ------------------------------------------------------------------------------


def test_a_call_completes_with_its_key_result_and_duration_on_the_pool_clock(make_pool, clock):
    pool = make_pool(2)

    def call() -> str:
        clock.advance(2.5)  # the call "takes" 2.5 s of the pool's clock
        return "value"

    pool.submit(("Site", 1), call, timeout=10.0)
    done = next_completion(pool)
    assert done == Completion(("Site", 1), "value", None, 2.5, False, pool.epoch)


def test_an_exception_is_captured_in_the_completion_and_the_worker_goes_on(make_pool):
    pool = make_pool(1)
    error = ValueError("backend said no")

    class Stop(BaseException):
        pass

    def fail() -> None:
        raise error

    def stop() -> None:
        raise Stop()

    pool.submit("a", fail)
    pool.submit("b", stop)  # not even a BaseException kills the worker
    pool.submit("c", lambda: 3)
    first, second, third = (next_completion(pool) for _ in range(3))
    assert (first.key, first.error, first.result, first.timed_out) == ("a", error, None, False)
    assert second.key == "b" and isinstance(second.error, Stop)
    assert (third.key, third.result, third.error) == ("c", 3, None)
    assert pool.workers == 1


def test_next_completion_returns_none_when_nothing_finished(make_pool):
    pool = make_pool(1)
    assert pool.next_completion(0) is None
    assert pool.running() == [] and pool.next_deadline() is None


def test_a_pool_needs_a_worker_and_refuses_calls_after_shutdown(make_pool):
    with pytest.raises(ValueError, match="at least one worker"):
        WorkerPool(0)
    pool = make_pool(3)
    wait_until(lambda: pool.threads == 3, "the workers started")
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit("late", lambda: None)
    wait_until(lambda: pool.threads == 0, "idle workers exited")


# -- timeouts on the fake clock ---------------------------------------------------------------


def test_a_call_times_out_when_the_clock_passes_its_deadline_without_real_waiting(
    make_pool, clock, gates
):
    pool = make_pool(1)
    gate = gates("late result")
    start = clock.now
    pool.submit("slow", gate, timeout=5.0)
    gate.wait_started()
    assert pool.next_deadline() == start + 5.0
    [call] = pool.running()
    assert (call.key, call.started, call.timeout, call.timed_out) == ("slow", start, 5.0, False)

    clock.advance(4.9)
    assert pool.next_completion(0) is None  # not due yet: nothing reported
    assert pool.abandoned == 0

    clock.advance(0.1)
    # max_wait=0: the timeout must be found before waiting, not after an empty wait
    done = pool.next_completion(0)
    assert done is not None
    assert (done.key, done.timed_out, done.error, done.result) == ("slow", True, None, None)
    assert done.duration == pytest.approx(5.0)
    assert pool.abandoned == 1 and pool.next_deadline() is None
    [call] = pool.running()
    assert call.key == "slow" and call.timed_out  # still running in its thread
    assert pool.next_completion(0) is None  # reported once


def test_calls_without_a_timeout_never_time_out(make_pool, clock, gates):
    pool = make_pool(1)
    gate = gates()
    pool.submit("patient", gate)
    gate.wait_started()
    clock.advance(1e9)
    assert pool.next_completion(0) is None
    assert pool.expire() == 0 and pool.abandoned == 0
    gate.opened.set()
    assert next_completion(pool).key == "patient"


def test_expire_reports_exactly_the_calls_past_their_deadline(make_pool, clock, gates):
    pool = make_pool(3)
    short, long_, none = gates(), gates(), gates()
    pool.submit("short", short, timeout=1.0)
    pool.submit("long", long_, timeout=3.0)
    pool.submit("none", none)
    for g in (short, long_, none):
        g.wait_started()
    start = clock.now
    assert pool.next_deadline() == start + 1.0

    assert pool.expire(start + 0.5) == 0
    assert pool.expire(start + 1.0) == 1  # a deadline is reached at its exact time
    assert pool.next_deadline() == start + 3.0
    assert pool.expire(start + 2.0) == 0
    clock.advance(3.0)
    assert pool.expire() == 1
    reported = [pool.completions.get_nowait() for _ in range(2)]
    assert [(c.key, c.timed_out) for c in reported] == [("short", True), ("long", True)]
    assert [c.duration for c in reported] == [pytest.approx(1.0), pytest.approx(3.0)]
    assert pool.completions.empty()
    assert sorted((c.key, c.timed_out) for c in pool.running()) == [
        ("long", True),
        ("none", False),
        ("short", True),
    ]


def test_a_timeout_is_reported_even_while_other_calls_keep_completing(make_pool, clock, gates):
    pool = make_pool(2)
    gate = gates()
    pool.submit("stuck", gate, timeout=5.0)
    gate.wait_started()
    pool.submit("quick", lambda: "ok")
    wait_until(lambda: pool.completions.qsize() == 1, "the quick call completed")
    clock.advance(5.0)
    first = pool.next_completion(0)
    # another call completes before the dispatcher looks again: the queue is never empty
    pool.submit("quicker", lambda: "ok")
    wait_until(lambda: pool.completions.qsize() == 2, "the quicker call completed")
    later = [pool.next_completion(0) for _ in range(2)]
    assert first is not None and first.key == "quick"
    assert [(c.key, c.timed_out) for c in later if c is not None] == [
        ("stuck", True),
        ("quicker", False),
    ]


def test_a_deadline_that_passes_during_the_wait_is_reported_at_once(make_pool, clock, gates):
    pool = make_pool(1)
    gate = gates()
    pool.submit("slow", gate, timeout=1.0)
    gate.wait_started()
    clock.advance(1.0 - 1 / 32)
    clock.step = 1 / 32  # the deadline comes while next_completion waits (1/32 s)
    done = pool.next_completion(1.0)
    assert done is not None and (done.key, done.timed_out) == ("slow", True)
    assert done.duration == 1.0


def test_the_earliest_deadline_follows_calls_that_start_later(make_pool, clock, gates):
    pool = make_pool(2)
    first, second = gates(), gates()
    start = clock.now
    pool.submit("first", first, timeout=10.0)
    first.wait_started()
    clock.advance(1.0)
    pool.submit("second", second, timeout=2.0)  # starts later, due earlier
    second.wait_started()
    assert [c.key for c in pool.running()] == ["first", "second"]  # oldest first
    assert pool.next_deadline() == start + 3.0
    clock.advance(2.0)
    done = pool.next_completion(0)
    assert done is not None and (done.key, done.timed_out) == ("second", True)
    assert pool.next_deadline() == start + 10.0
    clock.advance(6.9)
    assert pool.next_completion(0) is None
    clock.advance(0.1)
    done = pool.next_completion(0)
    assert done is not None and (done.key, done.timed_out) == ("first", True)


def test_a_call_that_returns_before_its_deadline_is_not_reported_as_timed_out(
    make_pool, clock, gates
):
    pool = make_pool(1)
    gate = gates("in time")
    pool.submit("prompt", gate, timeout=5.0)
    gate.wait_started()
    clock.advance(4.0)
    gate.opened.set()
    done = next_completion(pool)
    assert (done.key, done.result, done.timed_out) == ("prompt", "in time", False)
    clock.advance(100.0)
    assert pool.next_completion(0) is None
    assert pool.expire() == 0 and pool.abandoned == 0


# -- abandoned calls --------------------------------------------------------------------------


def test_an_abandoned_call_returns_through_on_return_and_its_thread_exits(make_pool, clock, gates):
    returned: list[Completion] = []
    came_back = threading.Event()

    def on_return(done: Completion) -> None:
        returned.append(done)
        came_back.set()

    pool = make_pool(1, on_return=on_return)
    gate = gates("late result")
    pool.submit("slow", gate, timeout=1.0)
    gate.wait_started()
    clock.advance(1.0)
    assert pool.next_completion(0) is not None
    assert (pool.workers, pool.abandoned, pool.threads) == (1, 1, 2)  # a replacement started

    pool.submit("next", lambda: "served by the replacement")
    assert next_completion(pool).result == "served by the replacement"

    gate.opened.set()
    assert came_back.wait(REAL_WAIT)
    [late] = returned
    assert (late.key, late.result, late.timed_out) == ("slow", "late result", False)
    wait_until(lambda: pool.threads == 1, "the returned thread exited (the pool was full)")
    assert (pool.workers, pool.abandoned) == (1, 0)
    assert pool.completions.empty()  # the late result never reaches the dispatcher


def test_abandoned_calls_are_bounded_and_their_threads_rejoin_a_short_pool(make_pool, clock, gates):
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    try:
        pool = make_pool(1, max_abandoned=1)
        first, second = gates(), gates()
        pool.submit("first", first, timeout=1.0)
        first.wait_started()
        clock.advance(1.0)
        assert next_completion(pool).timed_out
        assert (pool.workers, pool.abandoned, pool.threads) == (1, 1, 2)

        pool.submit("second", second, timeout=1.0)
        second.wait_started()
        clock.advance(1.0)
        assert next_completion(pool).timed_out
        # the bound is reached: no replacement, so the pool has no worker left
        assert (pool.workers, pool.abandoned, pool.threads) == (0, 2, 2)
        assert len(messages) == 1 and "limit 1" in messages[0]

        ran = threading.Event()
        pool.submit("waiting", ran.set)
        assert not ran.is_set() and "waiting" not in [c.key for c in pool.running()]

        first.opened.set()  # its thread rejoins the pool, which is short of a worker
        assert next_completion(pool, "waiting").error is None
        assert ran.is_set()
        assert (pool.workers, pool.abandoned, pool.threads) == (1, 1, 2)

        second.opened.set()  # the pool is full again: this thread exits
        wait_until(lambda: pool.threads == 1, "the second abandoned thread exited")
        assert (pool.workers, pool.abandoned) == (1, 0)
    finally:
        logger.remove(sink)


def test_abandon_running_gives_up_every_running_call(make_pool, gates):
    returned: list[Hashable] = []
    pool = make_pool(2, on_return=lambda done: returned.append(done.key))
    a, b = gates(), gates()
    pool.submit("a", a, timeout=60.0)
    pool.submit("b", b)
    a.wait_started()
    b.wait_started()
    assert sorted(pool.abandon_running()) == ["a", "b"]
    assert (pool.workers, pool.abandoned, pool.threads) == (2, 2, 4)
    assert pool.next_deadline() is None
    assert pool.abandon_running() == []  # nothing new to abandon
    a.opened.set()
    b.opened.set()
    wait_until(lambda: pool.threads == 2, "abandoned threads exited")
    assert sorted(returned) == ["a", "b"]
    assert pool.completions.empty()


# -- epochs -----------------------------------------------------------------------------------


def test_a_new_epoch_drops_calls_not_started_and_hides_old_completions(make_pool, gates):
    pool = make_pool(1)
    gate = gates("old pass")
    ran: list[str] = []
    pool.submit("running", gate)
    gate.wait_started()
    pool.submit("queued", lambda: ran.append("queued"))
    old = pool.epoch
    pool.new_epoch()
    assert pool.epoch == old + 1
    pool.submit("new", lambda: ran.append("new"))
    gate.opened.set()
    # the old call's completion is queued first, and comes out as None
    wait_until(lambda: pool.completions.qsize() >= 1, "the old call completed")
    assert pool.next_completion(0) is None
    done = next_completion(pool)
    assert (done.key, done.epoch) == ("new", old + 1)
    assert ran == ["new"]  # the call queued in the old epoch never ran


# -- batches of quick calls -------------------------------------------------------------------


def test_a_batch_completes_call_by_call_in_order_with_its_own_durations(make_pool, clock):
    pool = make_pool(1)
    seen: list[int] = []

    def call(i: int) -> Callable[[], int]:
        def run() -> int:
            seen.append(i)
            clock.advance(0.001 * (i + 1))
            if i == 2:
                raise ValueError("two")
            return i * 10

        return run

    pool.submit_batch([(i, call(i)) for i in range(4)], timeout=1.0)
    done = [next_completion(pool) for _ in range(4)]
    assert seen == [0, 1, 2, 3]
    assert [d.key for d in done] == [0, 1, 2, 3]
    assert [d.result for d in done] == [0, 10, None, 30]
    assert isinstance(done[2].error, ValueError) and done[1].error is None
    assert [d.duration for d in done] == pytest.approx([0.001, 0.002, 0.003, 0.004])
    assert pool.running() == [] and pool.next_completion(0) is None


def test_a_hung_call_of_a_batch_times_out_alone_and_the_rest_runs_elsewhere(
    make_pool, clock, gates
):
    pool = make_pool(2, split_after=1e9)  # only the timeout hands the rest over
    hung = gates("late")
    ran: list[str] = []
    calls = [
        ("first", lambda: ran.append("first")),
        ("hung", hung),
        ("third", lambda: ran.append("third")),
        ("fourth", lambda: ran.append("fourth")),
    ]
    start = clock.now
    pool.submit_batch(calls, timeout=5.0)
    assert next_completion(pool).key == "first"
    hung.wait_started()
    [call] = pool.running()
    assert call.key == "hung" and call.started == start  # its own start and deadline
    assert pool.next_deadline() == start + 5.0
    clock.advance(5.0)
    done = next_completion(pool)
    assert (done.key, done.timed_out) == ("hung", True)
    # the calls after it did not wait for it: a replacement worker runs them
    rest = [next_completion(pool) for _ in range(2)]
    assert [d.key for d in rest] == ["third", "fourth"]
    assert ran == ["first", "third", "fourth"] and pool.abandoned == 1
    hung.opened.set()
    wait_until(lambda: pool.abandoned == 0, "the hung call returned")
    assert pool.next_completion(0) is None  # its late result is not a completion


def test_a_slow_call_of_a_batch_hands_the_calls_after_it_to_another_worker(make_pool, clock, gates):
    pool = make_pool(2, split_after=0.05)
    slow = gates("slow")
    calls = [("slow", slow), ("quick-1", lambda: 1), ("quick-2", lambda: 2)]
    pool.submit_batch(calls)  # no timeout: only `split_after` applies
    slow.wait_started()
    clock.advance(0.049)
    pool.expire()
    assert [c.key for c in pool.running()] == ["slow"]  # not yet: the rest waits
    assert pool.completions.empty()
    clock.advance(0.001)
    assert pool.expire() == 0  # nothing timed out, but the rest of the batch moved on
    done = [next_completion(pool) for _ in range(2)]
    assert [d.key for d in done] == ["quick-1", "quick-2"]
    [call] = pool.running()
    assert (call.key, call.timed_out) == ("slow", False)  # not abandoned: it goes on
    slow.opened.set()
    assert next_completion(pool, "slow").result == "slow"
    assert pool.abandoned == 0


def test_a_new_epoch_drops_the_calls_of_a_batch_not_started(make_pool, gates):
    pool = make_pool(1)
    first = gates()
    ran: list[str] = []
    pool.submit_batch([("first", first), ("second", lambda: ran.append("second"))])
    first.wait_started()
    pool.new_epoch()
    first.opened.set()
    wait_until(lambda: pool.running() == [], "the batch ended")
    assert ran == [] and pool.next_completion(0) is None
