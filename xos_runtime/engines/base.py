"""What the built-in engines share: the wake-up loop, the worker pool and stopping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from loguru import logger

from xos_runtime.engines.pool import Completion, RunningCall, WorkerPool
from xos_runtime.engines.progress import ProgressMeter, ShowProgress
from xos_runtime.engines.report import PassReport
from xos_runtime.store import Key, ModelAccessor, transient

#: Longest wait between passes while another process holds objects this one wants: its
#: outcomes wake nobody, so the engine looks again soon.
HELD_ELSEWHERE_RECHECK = 0.25


class LoopEngine:
    """An engine that runs passes until stopped, sleeping between them until woken.

    A pass is `run_pass()`. Between passes the engine sleeps until the store publishes a
    change, the earliest retry time the pass reported (`PassReport.next_run`), or
    `poll_interval` seconds, whichever comes first; `stop()` wakes it at once.
    """

    name = "engine"

    def __init__(
        self,
        accessor: ModelAccessor,
        *,
        workers: int,
        poll_interval: float,
        clock: Callable[[], float] = time.time,
        max_abandoned: int | None = None,
    ):
        self.accessor = accessor
        self.workers = workers
        self.max_abandoned = max_abandoned
        self.poll_interval = poll_interval
        self.clock = clock
        self._pool: WorkerPool | None = None
        self._stopping = threading.Event()
        self._abandoned = threading.Event()
        self._sub = accessor.subscribe()
        self._log = logger.bind(engine=self.name)
        #: Who is told how a long pass goes, every `progress_every` seconds (the host sets
        #: both: log lines, or a bar on a terminal); None: nobody.
        self.progress: ShowProgress | None = None
        self.progress_every = 10.0

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool(
                self.workers,
                name=f"xos-runtime-{self.name}",
                max_abandoned=self.max_abandoned,
                on_return=self.call_returned,
            )
        return self._pool

    @property
    def abandoned_calls(self) -> int:
        """Calls abandoned after a timeout that have not returned yet."""
        return self._pool.abandoned if self._pool is not None else 0

    def call_returned(self, done: Completion) -> None:
        """An abandoned call returned (in its own thread): wake the engine to look again."""
        self._sub.post(())

    def meter(self, phase: str, total: int) -> ProgressMeter | None:
        """A meter for a pass (or phase) of `total` calls, if someone wants to know."""
        if self.progress is None or total <= 0:
            return None
        return ProgressMeter(phase, total, self.progress, self.progress_every)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run_pass(self, exclude: Iterable[Key] = ()) -> PassReport:
        raise NotImplementedError

    def report(self, hook: Callable[..., None] | None, *args: Any) -> None:
        """Call an outcome hook; an observer's bug is logged, never the engine's end."""
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            self._log.exception("an outcome hook of the {} engine raised; ignored", self.name)

    def serve(self) -> None:
        """Run passes until `stop()`."""
        while not self._stopping.is_set():
            try:
                report = self.run_pass()
            except Exception as exc:
                if transient(exc):  # the store logged the outage once; details at DEBUG
                    self._log.opt(exception=exc).debug("{} pass failed", self.name)
                    report = PassReport(next_run=self.clock() + 1.0)
                else:
                    self._log.exception(
                        "{} pass failed; retrying after the poll interval", self.name
                    )
                    report = PassReport()
            if self._stopping.is_set():
                break
            wait = self.poll_interval
            if report.held_elsewhere:
                wait = min(wait, HELD_ELSEWHERE_RECHECK)
            if report.next_run is not None:
                wait = min(wait, max(0.0, report.next_run - self.clock()))
            self._sub.wait(wait)

    def stop(self) -> None:
        """Stop taking new work; running calls finish (the host bounds the wait)."""
        self._stopping.set()
        self._sub.post(())

    def abandon(self) -> None:
        """Stop at once: a pass under way stops waiting for its running calls.

        For `--until-idle --timeout`: the calls go on in their (daemon) threads, their
        outcomes are not written, and the objects stay pending for the next run.
        """
        self._abandoned.set()
        self.stop()

    @property
    def abandoned(self) -> bool:
        return self._abandoned.is_set()

    def running_calls(self) -> list[str]:
        """What this engine's workers run now, one readable line per call, oldest first.

        Calls that timed out are included (they still run in their daemon threads); the host
        logs these lines when it exits without waiting for them.
        """
        if self._pool is None:
            return []
        now = time.monotonic()
        lines = []
        for call in self._pool.running():
            state = f"running for {now - call.started:.1f}s"
            if call.timed_out and call.timeout is not None:
                state = f"timed out after {call.timeout:g}s, {state}"
            lines.append(f"{self.name}: {self.describe_call(call)} ({state})")
        return lines

    def describe_call(self, call: RunningCall) -> str:
        """How `running_calls` names a call: by default its key, as `Model id` for objects."""
        key = call.key
        return " ".join(map(str, key)) if isinstance(key, tuple) else repr(key)

    def close(self) -> None:
        self.stop()
        self._sub.close()
        if self._pool is not None:
            self._pool.shutdown()
