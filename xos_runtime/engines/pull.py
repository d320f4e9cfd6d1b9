"""The pull engine: calls each pull step's `pull_records()` every `interval` seconds.

Each step has its own schedule (the original ran all of them on one 5-second tick and a hung
step stopped every later round). A step that raises is logged and called again at its next
interval; its saves follow the pull-step change-tracking rules (reference 1.9: nothing is
re-triggered unless it saves with `always_update_timestamp=True`). Pull passes never keep
`--until-idle` running: a pass reports no attempted objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from xos_runtime.engines.base import LoopEngine
from xos_runtime.engines.dag import Key
from xos_runtime.engines.outcome import Outcome, classify
from xos_runtime.engines.report import PassReport
from xos_runtime.steps import PullStep
from xos_runtime.store import ModelAccessor, Schedule, acting_as

PullHook = Callable[[Any, Outcome], None]


class PullEngine(LoopEngine):
    """Runs pull steps on their intervals (see the module docstring)."""

    name = "pull"

    def __init__(
        self,
        accessor: ModelAccessor,
        steps: Sequence[type[PullStep]],
        *,
        timeout: float | None = None,
        shared_by: str | None = None,
        on_outcome: PullHook | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.steps = list(steps)
        super().__init__(
            accessor,
            workers=max(1, len(self.steps)),
            poll_interval=max([float(s.interval) for s in self.steps] or [5.0]),
            clock=clock,
        )
        self.timeout = timeout
        self.on_outcome = on_outcome
        self._due: dict[type[PullStep], float] = {step: 0.0 for step in self.steps}
        # With several processes on one store (`shared_by` names this one), one of them
        # runs each step per interval: the shared schedule says which.
        self._schedule = Schedule(accessor.store, shared_by) if shared_by else None

    def run_pass(self, exclude: Iterable[Key] = ()) -> PassReport:
        report = PassReport()
        now = self.clock()
        running: dict[int, type[PullStep]] = {}
        self.pool.new_epoch()
        for index, step_cls in enumerate(self.steps):
            if self._due[step_cls] <= now and not self.stopping:
                name = f"pull:{step_cls.__module__}.{step_cls.__qualname__}"
                interval = float(step_cls.interval)
                if self._schedule is not None and not self._schedule.take(name, now, interval):
                    self._due[step_cls] = now + float(step_cls.interval)  # another one runs it
                    continue
                running[index] = step_cls
                self.pool.submit(index, self._caller(step_cls), self.timeout)
        while running and not self.abandoned:
            done = self.pool.next_completion()
            if done is None:
                continue
            step_cls = running.pop(done.key, None)  # type: ignore[call-overload]
            if step_cls is None:
                continue
            outcome = classify(
                done.error,
                done.timed_out,
                done.duration,
                False,
                self.timeout,
                call="pull_records",
            )
            report.outcomes[outcome.kind] += 1
            if outcome.ok:
                report.succeeded += 1
            else:
                self._log.bind(step=step_cls.__name__).warning(
                    "pull_records failed: {}", outcome.message
                )
            self._due[step_cls] = self.clock() + float(step_cls.interval)
            self.report(self.on_outcome, step_cls, outcome)
        if self._due:
            report.next_run = min(self._due.values())
        return report

    def _caller(self, step_cls: type[PullStep]) -> Callable[[], None]:
        def call() -> None:
            log = self._log.bind(step=step_cls.__name__)
            with acting_as("pull"):
                step_cls(model_accessor=self.accessor, log=log).pull_records()

        return call
