"""Outcome metrics: a plugin of the outcome hooks that counts and times every unit of work.

It sees exactly what a third-party observer sees (`xos_runtime_sync_outcome` and its policy,
event and pull siblings). Held-back objects (`blocked`) are counted but not timed: no plugin
call ran for them.

The hooks run once per object or message, on the engines' workers, so they only add to
plain tallies under one lock (about 1 us; a `prometheus_client` Counter and Histogram cost
3.5 us together); the scrape turns the tallies into a counter and a histogram family.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from xos_runtime.engines import Outcome
from xos_runtime.hookspecs import hookimpl

__all__ = ["BUCKETS", "OutcomeMetrics"]

#: Call-duration bucket bounds (seconds): plugin calls range from sub-millisecond to timeouts.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _name(step: Any) -> str:
    return str(getattr(step, "__name__", type(step).__name__))


class _Timing:
    """Calls of one engine and step: how many fell in each bucket (the last: above all
    bounds), and their total time."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.total = 0.0


class OutcomeMetrics(Collector):
    """`xos_runtime_outcomes_total{engine,step,outcome}` and
    `xos_runtime_call_duration_seconds{engine,step}`; register it on a registry too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, Any, str], int] = {}
        self._timings: dict[tuple[str, Any], _Timing] = {}

    def _add(self, engine: str, step: Any, outcome: Outcome) -> None:
        key = (engine, step, outcome.kind)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            if outcome.kind == "blocked":
                return
            timing = self._timings.get(key[:2])
            if timing is None:
                timing = self._timings[key[:2]] = _Timing()
            timing.buckets[bisect_left(BUCKETS, outcome.duration)] += 1
            timing.total += outcome.duration

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

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts = dict(self._counts)
            timings = {k: (list(t.buckets), t.total) for k, t in self._timings.items()}
        outcomes = CounterMetricFamily(
            "xos_runtime_outcomes",
            "Units of work finished, by engine, step (or policy) and outcome.",
            labels=["engine", "step", "outcome"],
        )
        for (engine, step, kind), n in sorted(counts.items(), key=_by_name):
            outcomes.add_metric([engine, _name(step), kind], n)
        durations = HistogramMetricFamily(
            "xos_runtime_call_duration_seconds",
            "Wall time of plugin calls, by engine and step (or policy).",
            labels=["engine", "step"],
        )
        for (engine, step), (buckets, total) in sorted(timings.items(), key=_by_name):
            cumulative, running = [], 0
            for bound, n in zip([*map(str, BUCKETS), "+Inf"], buckets, strict=True):
                running += n
                cumulative.append((bound, running))
            durations.add_metric([engine, _name(step)], cumulative, total)
        yield outcomes
        yield durations


def _by_name(item: tuple[tuple[Any, ...], Any]) -> tuple[str, ...]:
    return tuple(_name(part) if not isinstance(part, str) else part for part in item[0])
