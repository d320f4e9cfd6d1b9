"""A bounded worker pool whose calls can time out without blocking the pool.

Python cannot kill a thread, so a call that overruns its timeout is *abandoned*: the pool
reports it as timed out, starts a replacement worker so the pool keeps its size, and the
stuck thread (a daemon) discards its result and exits whenever the call returns. Completed
calls arrive on one queue that the engine's dispatcher reads, so all bookkeeping stays in a
single thread.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import attrs


@attrs.define
class _Task:
    key: Hashable
    fn: Callable[[], Any]
    timeout: float | None
    epoch: int = 0
    started: float | None = None
    abandoned: bool = False


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
    """`size` daemon threads running submitted calls; results come out of `completions`."""

    def __init__(self, size: int, name: str = "xos-runtime-worker"):
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self.name = name
        self.completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._running: dict[int, _Task] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._threads: list[threading.Thread] = []
        self._closed = False
        #: Calls submitted since the last `new_epoch()`; older completions are dropped, so a
        #: pass never mistakes a call of an earlier (aborted) pass for one of its own.
        self.epoch = 0
        for _ in range(size):
            self._spawn()

    def _spawn(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]  # forget finished ones
        t = threading.Thread(target=self._work, name=f"{self.name}-{next(self._ids)}", daemon=True)
        self._threads.append(t)
        t.start()

    def _work(self) -> None:
        ident = threading.get_ident()
        while True:
            task = self._tasks.get()
            if task is None:
                return
            start = time.monotonic()
            with self._lock:
                task.started = start
                self._running[ident] = task
            result: Any = None
            error: BaseException | None = None
            try:
                result = task.fn()
            except BaseException as exc:  # reported to the engine, never lost
                error = exc
            duration = time.monotonic() - start
            with self._lock:
                self._running.pop(ident, None)
                abandoned = task.abandoned
            if abandoned:
                return  # a replacement worker already took this thread's place
            self.completions.put(Completion(task.key, result, error, duration, epoch=task.epoch))

    def submit(self, key: Hashable, fn: Callable[[], Any], timeout: float | None = None) -> None:
        if self._closed:
            raise RuntimeError("the worker pool is shut down")
        self._tasks.put(_Task(key, fn, timeout, self.epoch))

    def next_deadline(self) -> float | None:
        """The monotonic time at which the earliest running call times out, if any."""
        with self._lock:
            deadlines = [
                t.started + t.timeout
                for t in self._running.values()
                if t.timeout is not None and t.started is not None and not t.abandoned
            ]
        return min(deadlines) if deadlines else None

    def expire(self, now: float | None = None) -> int:
        """Abandon calls past their timeout, reporting each as a timed-out completion."""
        now = time.monotonic() if now is None else now
        expired: list[_Task] = []
        with self._lock:
            for task in self._running.values():
                if (
                    not task.abandoned
                    and task.timeout is not None
                    and task.started is not None
                    and now - task.started >= task.timeout
                ):
                    task.abandoned = True
                    expired.append(task)
        for task in expired:
            assert task.started is not None
            self.completions.put(
                Completion(task.key, duration=now - task.started, timed_out=True, epoch=task.epoch)
            )
            if not self._closed:
                self._spawn()
        return len(expired)

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
        """Start a new batch of calls (a pass): completions of earlier calls are ignored."""
        self.epoch += 1

    def next_completion(self, max_wait: float = 0.2) -> Completion | None:
        """The next finished (or timed-out) call, or None after `max_wait` seconds.

        Waits no longer than the earliest running call's deadline, and reports calls past
        their timeout on the way, so a caller looping on this sees timeouts on time.
        """
        deadline = self.next_deadline()
        wait = (
            max_wait if deadline is None else min(max_wait, max(0.0, deadline - time.monotonic()))
        )
        try:
            done = self.completions.get(timeout=wait)
        except queue.Empty:
            self.expire()
            return None
        return done if done.epoch == self.epoch else None

    def shutdown(self) -> None:
        """Stop taking work; idle workers exit, running calls finish (or are abandoned)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._tasks.put(None)
