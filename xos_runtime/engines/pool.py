"""A bounded worker pool whose calls can time out without blocking the pool.

Python cannot kill a thread, so a call that overruns its timeout is *abandoned*: the pool
reports it as timed out and lets the stuck thread run on. While fewer than `max_abandoned`
calls are abandoned, a replacement worker takes its place, so the pool keeps its size; past
that bound the pool works with fewer workers (new calls wait), so a backend that hangs every
call cannot grow the process's threads without limit: there are never more than `size +
max_abandoned` worker threads. When an abandoned call returns, its thread reports it through
`on_return` (the engine then lets the object run again) and goes back to work if the pool is
short of a worker, or exits.

Completed calls arrive on one queue that the engine's dispatcher reads, so all bookkeeping
stays in a single thread.

Quick calls can be handed over in batches (`submit_batch`): one worker runs the calls of a
batch one after another, each with its own start, timeout and completion, so that thousands
of calls of a few microseconds each do not cost a hand-over between threads each. A batch
never holds its calls back behind a slow one: once a call of a batch has run `split_after`
seconds (or timed out), the calls of the batch that have not started are submitted again as
a batch of their own, which another worker takes.

Timeouts cost the dispatcher one clock read per completion: a worker starting a call lowers
`_check_at` to the call's deadline, and the running calls are scanned (under the lock) only
once that time has come. Every time the pool measures comes from `monotonic`
(`time.monotonic` unless a test passes a fake clock), so a test makes a call time out by
advancing its clock and calling `next_completion`, without waiting.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import attrs
from loguru import logger

__all__ = ["Completion", "WorkerPool"]

#: Seconds a call of a batch may run before the calls after it go to another worker.
SPLIT_AFTER = 0.05


Call = tuple[Hashable, Callable[[], Any]]


@attrs.define(eq=False)
class _Task:
    key: Hashable
    fn: Callable[[], Any]
    timeout: float | None
    epoch: int = 0
    started: float | None = None
    abandoned: bool = False
    #: The calls of a batch still to run after this one, last first (`submit_batch`).
    rest: list[Call] | None = None


@attrs.frozen
class RunningCall:
    """A call a worker runs now: its key, when it started (monotonic seconds), its timeout,
    and whether it timed out already (it was reported and abandoned, yet still runs)."""

    key: Hashable
    started: float
    timeout: float | None
    timed_out: bool


@attrs.frozen
class Completion:
    """A finished call: its key, its return value or exception, and how long it ran."""

    key: Hashable
    result: Any = None
    error: BaseException | None = None
    duration: float = 0.0
    timed_out: bool = False
    epoch: int = 0


class WorkerPool:
    """`size` daemon threads running submitted calls; results come out of `completions`.

    `on_return(completion)` is called, in the returning thread, when an abandoned call
    finally returns. `monotonic` is the clock of every start, duration and deadline (tests
    pass a fake one).
    """

    def __init__(
        self,
        size: int,
        name: str = "xos-runtime-worker",
        *,
        max_abandoned: int | None = None,
        on_return: Callable[[Completion], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        split_after: float = SPLIT_AFTER,
    ):
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self.name = name
        self.max_abandoned = 2 * size if max_abandoned is None else max_abandoned
        self.on_return = on_return
        #: The clock of `RunningCall.started`, `Completion.duration` and every deadline.
        self.monotonic = monotonic
        #: Seconds a call of a batch runs before the rest of its batch is submitted again.
        self.split_after = split_after
        self.completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._running: dict[int, _Task] = {}
        self._lock = threading.Lock()
        #: No running call times out (or holds back the rest of its batch) before this time
        #: (None: no such call started since the last scan found none running). A starting
        #: call lowers it to its deadline and `expire` sets it to the earliest deadline it
        #: finds, both under the lock; the dispatcher reads it without the lock. A call that
        #: returns leaves it alone: that costs at most one early scan.
        self._check_at: float | None = None
        self._ids = itertools.count()
        self._closed = False
        #: Worker threads that take tasks (abandoned threads are not counted).
        self._workers = 0
        #: Threads whose call was abandoned and is still running.
        self.abandoned = 0
        self._short_logged = False
        #: Calls submitted since the last `new_epoch()`; calls of earlier epochs that have
        #: not started yet are dropped, and their completions ignored, so a pass never
        #: mistakes a call of an earlier (aborted) pass for one of its own.
        self.epoch = 0
        for _ in range(size):
            self._spawn()

    def _spawn(self) -> None:
        with self._lock:
            self._workers += 1
        t = threading.Thread(target=self._work, name=f"{self.name}-{next(self._ids)}", daemon=True)
        t.start()

    def _work(self) -> None:
        ident = threading.get_ident()
        while True:
            task = self._tasks.get()
            if task is None:
                with self._lock:
                    self._workers -= 1
                return
            if task.epoch != self.epoch:
                continue  # submitted by a pass that ended before it started
            start = self.monotonic()
            with self._lock:
                self._start(ident, task, start)
            while True:  # each call of the task's batch (one call without a batch)
                result: Any = None
                error: BaseException | None = None
                try:
                    result = task.fn()
                except BaseException as exc:  # reported to the engine, never lost
                    error = exc
                end = self.monotonic()
                done = Completion(task.key, result, error, end - start, False, task.epoch)
                with self._lock:
                    abandoned = task.abandoned
                    rest = task.rest
                    if abandoned or not rest or task.epoch != self.epoch:
                        self._running.pop(ident, None)
                        rest = None
                    else:
                        # the next call of the batch checks later than this one: `_check_at`
                        # is early enough as it is
                        task.key, task.fn = rest.pop()
                        task.started = start = end
                if abandoned:
                    break
                self.completions.put(done)
                if rest is None:
                    break
            if not abandoned:
                continue
            if self.on_return is not None:
                try:
                    self.on_return(done)
                except Exception:
                    logger.exception("handling a returned abandoned call failed")
            with self._lock:
                self.abandoned -= 1
                rejoin = not self._closed and self._workers < self.size
                if rejoin:
                    self._workers += 1
                    self._short_logged = False
            if not rejoin:
                return

    def _start(self, ident: int, task: _Task, start: float) -> None:
        """`task`'s (next) call starts in thread `ident` (lock held)."""
        task.started = start
        self._running[ident] = task
        deadline = self._check_time(task)
        if deadline is not None and (self._check_at is None or deadline < self._check_at):
            self._check_at = deadline

    def _check_time(self, task: _Task) -> float | None:
        """When `expire` must look at `task`'s running call: its deadline, or earlier the
        time it holds back the rest of its batch (lock held)."""
        assert task.started is not None
        deadline = None if task.timeout is None else task.started + task.timeout
        if task.rest:
            split = task.started + self.split_after
            deadline = split if deadline is None else min(deadline, split)
        return deadline

    def submit(self, key: Hashable, fn: Callable[[], Any], timeout: float | None = None) -> None:
        if self._closed:
            raise RuntimeError("the worker pool is shut down")
        self._tasks.put(_Task(key, fn, timeout, self.epoch))

    def submit_batch(self, calls: Sequence[Call], timeout: float | None = None) -> None:
        """Run `calls` (key, function) one after another in one worker: for many quick calls.

        Each call has its own start, `timeout` and completion, as if submitted alone; once a
        call has run `split_after` seconds or timed out, the calls after it that have not
        started are submitted again (see the module docstring).
        """
        if not calls:
            return
        if self._closed:
            raise RuntimeError("the worker pool is shut down")
        rest = list(reversed(calls))  # popped from the end: in the order given
        key, fn = rest.pop()
        self._tasks.put(_Task(key, fn, timeout, self.epoch, rest=rest or None))

    def next_deadline(self) -> float | None:
        """The monotonic time at which the earliest running call times out, if any."""
        with self._lock:
            return self._earliest_deadline()

    def _earliest_deadline(self) -> float | None:
        """`next_deadline` with the lock held."""
        deadlines = [
            t.started + t.timeout
            for t in self._running.values()
            if t.timeout is not None and t.started is not None and not t.abandoned
        ]
        return min(deadlines) if deadlines else None

    def _abandon(self, tasks: list[_Task]) -> int:
        """Mark `tasks` abandoned (lock held); returns how many replacement workers to start
        (within the bound)."""
        for task in tasks:
            task.abandoned = True
            self.abandoned += 1
            self._workers -= 1
        # back to `size` workers, but never past `size + max_abandoned` threads in all
        room = self.size + self.max_abandoned - self.abandoned - self._workers
        replace = 0 if self._closed else max(0, min(self.size - self._workers, room))
        if replace < len(tasks) and not self._short_logged and not self._closed:
            self._short_logged = True
            logger.warning(
                "{} calls abandoned after timing out are still running (limit {}); new calls "
                "wait for one of {} worker(s) until they return",
                self.abandoned,
                self.max_abandoned,
                self._workers + replace,
            )
        return replace

    def _abandon_where(
        self,
        select: Callable[[_Task], bool],
        then: Callable[[list[_Task]], None] | None = None,
    ) -> list[_Task]:
        """Abandon the running calls `select` picks and start their replacements; `then`
        (given the abandoned tasks) runs before the lock is released."""
        with self._lock:
            tasks = [t for t in self._running.values() if not t.abandoned and select(t)]
            spawns = self._abandon(tasks)
            if then is not None:
                then(tasks)
        for _ in range(spawns):
            self._spawn()
        return tasks

    def expire(self, now: float | None = None) -> int:
        """Abandon calls past their timeout, reporting each as a timed-out completion, and
        hand the calls of a batch that wait behind a slow (or timed-out) one to another
        worker.

        Returns at once, without the lock, before the earliest deadline can have come.
        """
        now = self.monotonic() if now is None else now
        check_at = self._check_at
        if check_at is None or now < check_at:
            return 0

        def report_split_and_rearm(expired: list[_Task]) -> None:
            # timeouts first: the calls handed over below may complete at once
            for task in expired:
                assert task.started is not None
                self.completions.put(
                    Completion(
                        task.key, duration=now - task.started, timed_out=True, epoch=task.epoch
                    )
                )
            for task in self._running.values():
                if (
                    task.rest
                    and task.started is not None
                    and (task.abandoned or task.started + self.split_after <= now)
                ):
                    key, fn = task.rest.pop()
                    rest = task.rest or None
                    self._tasks.put(_Task(key, fn, task.timeout, task.epoch, rest=rest))
                    task.rest = None
            self._check_at = self._earliest_check()

        expired = self._abandon_where(
            lambda t: (
                t.timeout is not None and t.started is not None and t.started + t.timeout <= now
            ),
            then=report_split_and_rearm,
        )
        return len(expired)

    def _earliest_check(self) -> float | None:
        """The earliest `_check_time` of the running calls not abandoned (lock held)."""
        times = [
            t
            for t in (
                self._check_time(task) for task in self._running.values() if not task.abandoned
            )
            if t is not None
        ]
        return min(times) if times else None

    def abandon_running(self) -> list[Hashable]:
        """Abandon every running call (a pass that must end now); returns their keys.

        Calls submitted but not started are dropped (see `new_epoch`). Each abandoned call
        still reports its return through `on_return`.
        """

        def drop_batches(_abandoned: list[_Task]) -> None:
            for task in self._running.values():
                task.rest = None

        tasks = self._abandon_where(lambda _t: True, then=drop_batches)
        return [t.key for t in tasks]

    def running(self) -> list[RunningCall]:
        """The calls running now, timed-out ones included, oldest first."""
        with self._lock:
            calls = [
                RunningCall(t.key, t.started, t.timeout, t.abandoned)
                for t in self._running.values()
                if t.started is not None
            ]
        return sorted(calls, key=lambda c: c.started)

    def new_epoch(self) -> None:
        """Start a new batch of calls (a pass): earlier calls not yet started are dropped."""
        self.epoch += 1

    @property
    def workers(self) -> int:
        """Worker threads that take new calls now (abandoned ones excluded)."""
        with self._lock:
            return self._workers

    @property
    def threads(self) -> int:
        """Worker threads alive now, abandoned ones included."""
        with self._lock:
            return self._workers + self.abandoned

    def next_completion(self, max_wait: float = 0.2) -> Completion | None:
        """The next finished (or timed-out) call, or None after `max_wait` seconds.

        Waits no longer than the earliest running call's deadline, and reports calls past
        their timeout first, so a caller looping on this sees timeouts on time, even while
        other calls keep completing. A completion of an earlier epoch comes out as None.
        """
        wait = max_wait
        check_at = self._check_at
        if check_at is not None:
            now = self.monotonic()
            if now >= check_at:
                self.expire(now)
                check_at = self._check_at
            if check_at is not None:
                wait = min(max_wait, max(0.0, check_at - now))
        try:
            done = self.completions.get(timeout=wait)
        except queue.Empty:
            if not self.expire():
                return None
            try:
                done = self.completions.get_nowait()  # a call that just timed out
            except queue.Empty:  # taken by another reader
                return None
        return done if done.epoch == self.epoch else None

    def shutdown(self) -> None:
        """Stop taking work; idle workers exit, running calls finish (or are abandoned)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            n = self._workers
        for _ in range(n):
            self._tasks.put(None)
