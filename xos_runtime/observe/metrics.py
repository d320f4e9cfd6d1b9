"""Outcome metrics: a plugin of the outcome hooks that counts and times every unit of work.

It sees exactly what a third-party observer sees (`xos_runtime_sync_outcome` and its policy,
event and pull siblings). Held-back objects (`blocked`) are counted but not timed: no plugin
call ran for them.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from xos_runtime.engines import Outcome
from xos_runtime.hookspecs import hookimpl

__all__ = ["OutcomeMetrics"]

#: Call-duration buckets (seconds): plugin calls range from sub-millisecond to timeouts.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _name(step: Any) -> str:
    return str(getattr(step, "__name__", type(step).__name__))


class OutcomeMetrics:
    """`xos_runtime_outcomes_total{engine,step,outcome}` and
    `xos_runtime_call_duration_seconds{engine,step}`, on `registry`."""

    def __init__(self, registry: CollectorRegistry):
        self.outcomes = Counter(
            "xos_runtime_outcomes",
            "Units of work finished, by engine, step (or policy) and outcome.",
            ["engine", "step", "outcome"],
            registry=registry,
        )
        self.durations = Histogram(
            "xos_runtime_call_duration_seconds",
            "Wall time of plugin calls, by engine and step (or policy).",
            ["engine", "step"],
            buckets=BUCKETS,
            registry=registry,
        )
        # the labelled children, looked up once (`labels()` takes a lock and builds a key)
        self._counts: dict[tuple[str, type, str], Any] = {}
        self._times: dict[tuple[str, type], Any] = {}

    def _add(self, engine: str, step: Any, outcome: Outcome) -> None:
        key = (engine, step, outcome.kind)
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = self.outcomes.labels(engine, _name(step), outcome.kind)
        count.inc()
        if outcome.kind == "blocked":
            return
        timer = self._times.get(key[:2])
        if timer is None:
            timer = self._times[key[:2]] = self.durations.labels(engine, _name(step))
        timer.observe(outcome.duration)

    @hookimpl
    def xos_runtime_sync_outcome(self, step: Any, obj: Any, outcome: Outcome) -> None:
        self._add("sync", step, outcome)

    @hookimpl
    def xos_runtime_policy_outcome(
        self, policy: Any, obj: Any, action: str, outcome: Outcome
    ) -> None:
        self._add("policies", policy, outcome)

    @hookimpl
    def xos_runtime_event_outcome(self, step: Any, event: Any, outcome: Outcome) -> None:
        self._add("events", step, outcome)

    @hookimpl
    def xos_runtime_pull_outcome(self, step: Any, outcome: Outcome) -> None:
        self._add("pull", step, outcome)
