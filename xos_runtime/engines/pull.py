"""The pull engine: calls each pull step's `pull_records()` every `interval` seconds.

Each step has its own schedule (the original ran all of them on one 5-second tick and a hung
step stopped every later round). A step that raises is logged and called again at its next
interval; its saves follow the pull-step change-tracking rules (reference 1.9: nothing is
re-triggered unless it saves with `always_update_timestamp=True`). Pull passes never keep
`--until-idle` running: a pass reports no attempted objects.

A call may have a time limit: the step's `timeout`, else the engine's (`pull.timeout` in the
config). A call over it is abandoned: it is reported as timed out and the pass goes on, so a
hung pull never holds `--once`, `--until-idle` or a shutdown longer than its timeout. The call
goes on in its daemon thread, and its step is not called again until it has returned: one
call per step at a time, so a hung backend never piles up threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

from xos_runtime.config import PullSettings
from xos_runtime.engines.base import LoopEngine
from xos_runtime.engines.outcome import classify, log_failure
from xos_runtime.engines.pool import RunningCall
from xos_runtime.engines.report import PassReport
from xos_runtime.engines.sink import OutcomeSink
from xos_runtime.steps import PullStep
from xos_runtime.store import Key, ModelAccessor, acting_as


class PullEngine(LoopEngine):
    """Runs pull steps on their intervals (see the module docstring).

    `settings.timeout` is the default time limit of one call in seconds (a step's `timeout`
    wins); None is no limit.
    """

    name = "pull"

    def __init__(
        self,
        accessor: ModelAccessor,
        steps: Sequence[type[PullStep]],
        settings: PullSettings | None = None,
        *,
        shared_by: str | None = None,
        outcomes: OutcomeSink | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.steps = list(steps)
        super().__init__(
            accessor,
            workers=max(1, len(self.steps)),
            poll_interval=max([float(s.interval) for s in self.steps] or [5.0]),
            clock=clock,
        )
        self.settings = settings or PullSettings()
        self.on_outcome = outcomes.pull if outcomes is not None else None
        self._due: dict[type[PullStep], float] = {step: 0.0 for step in self.steps}
        # Steps whose call has not returned yet (timed-out ones included), with its start in
        # monotonic seconds. Written by the dispatching thread and by the workers.
        self._busy: dict[type[PullStep], float] = {}
        #: The busy steps whose call was reported as timed out.
        self._abandoned_calls: set[type[PullStep]] = set()
        self._busy_lock = threading.Lock()
        # With several processes on one store (`shared_by` names this one), one of them
        # runs each step per interval: the shared schedule says which.
        self._schedule = accessor.schedule(shared_by) if shared_by else None

    def timeout_for(self, step_cls: type[PullStep]) -> float | None:
        """Seconds one call of `step_cls` may take: its own `timeout`, else the engine's."""
        return float(step_cls.timeout) if step_cls.timeout is not None else self.settings.timeout

    def run_pass(self, exclude: Iterable[Key] = ()) -> PassReport:
        report = PassReport()
        now = self.clock()
        running: dict[int, type[PullStep]] = {}
        self.pool.new_epoch()
        for index, step_cls in enumerate(self.steps):
            if self._due[step_cls] > now or self.stopping:
                continue
            if self._still_running(step_cls):
                self._due[step_cls] = now + float(step_cls.interval)  # skips this turn
                continue
            name = f"pull:{step_cls.__module__}.{step_cls.__qualname__}"
            interval = float(step_cls.interval)
            if self._schedule is not None and not self._schedule.take(name, now, interval):
                self._due[step_cls] = now + float(step_cls.interval)  # another one runs it
                continue
            running[index] = step_cls
            self._submit(index, step_cls)
        while running and not self.abandoned:
            done = self.pool.next_completion()
            if done is None:
                continue
            step_cls = running.pop(done.key, None)  # type: ignore[call-overload]
            if step_cls is None:
                continue
            timeout = self.timeout_for(step_cls)
            outcome = classify(
                done.error, done.timed_out, done.duration, False, timeout, call="pull_records"
            )
            report.outcomes[outcome.kind] += 1
            log = self._log.bind(step=step_cls.__name__)
            if outcome.ok:
                report.succeeded += 1
            elif outcome.kind == "timeout":
                with self._busy_lock:
                    if step_cls in self._busy:
                        self._abandoned_calls.add(step_cls)
                log.warning(
                    "{}; abandoned: the call goes on in its thread, and {} is not called "
                    "again until it returns",
                    outcome.message,
                    step_cls.__name__,
                )
            else:
                log_failure(log, "pull_records", done.error, outcome.message)
            self._due[step_cls] = self.clock() + float(step_cls.interval)
            self.report(self.on_outcome, step_cls, outcome)
        if self._due:
            report.next_run = min(self._due.values())
        return report

    def _still_running(self, step_cls: type[PullStep]) -> bool:
        with self._busy_lock:
            started = self._busy.get(step_cls)
        if started is None:
            return False
        self._log.bind(step=step_cls.__name__).debug(
            "not called: its call of {:.1f}s ago has not returned yet", time.monotonic() - started
        )
        return True

    def _submit(self, index: int, step_cls: type[PullStep]) -> None:
        with self._busy_lock:
            self._busy[step_cls] = time.monotonic()
        try:
            self.pool.submit(index, self._caller(step_cls), self.timeout_for(step_cls))
        except BaseException:
            with self._busy_lock:
                self._busy.pop(step_cls, None)
            raise

    def _caller(self, step_cls: type[PullStep]) -> Callable[[], None]:
        def call() -> None:
            log = self._log.bind(step=step_cls.__name__)
            try:
                with acting_as("pull"):
                    step_cls(model_accessor=self.accessor, log=log).pull_records()
            finally:
                with self._busy_lock:
                    started = self._busy.pop(step_cls, time.monotonic())
                    abandoned = step_cls in self._abandoned_calls
                    self._abandoned_calls.discard(step_cls)
                if abandoned:
                    log.info(
                        "the abandoned pull_records call returned after {:.1f}s; the step "
                        "runs again at its next interval",
                        time.monotonic() - started,
                    )

        return call

    def describe_call(self, call: RunningCall) -> str:
        key = call.key
        if isinstance(key, int) and 0 <= key < len(self.steps):
            return f"{self.steps[key].__name__}.pull_records"
        return super().describe_call(call)
