"""The outcome metrics as a scrape shows them (one class: fed through its hooks directly)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from xos_runtime.engines import Outcome
from xos_runtime.observe.metrics import OutcomeMetrics


class SyncSite:
    pass


class SitePolicy:
    pass


def test_counts_per_step_and_outcome_and_a_cumulative_histogram() -> None:
    metrics = OutcomeMetrics()
    registry = CollectorRegistry()
    registry.register(metrics)
    for duration in (0.0005, 0.001, 0.2, 75.0):  # 0.001 falls in le=0.001: bounds include
        metrics.xos_runtime_sync_outcome(SyncSite, None, Outcome("success", duration=duration))
    metrics.xos_runtime_sync_outcome(SyncSite, None, Outcome("error", "boom", 2, 0.3))
    metrics.xos_runtime_sync_outcome(SyncSite, None, Outcome("blocked", "held", 2, 0.0))
    metrics.xos_runtime_policy_outcome(SitePolicy, None, "create", Outcome("success"))

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }

    def outcome(engine: str, step: str, kind: str) -> float:
        labels = (("engine", engine), ("outcome", kind), ("step", step))
        return samples[("xos_runtime_outcomes_total", labels)]

    assert outcome("sync", "SyncSite", "success") == 4
    assert outcome("sync", "SyncSite", "error") == 1
    assert outcome("sync", "SyncSite", "blocked") == 1
    assert outcome("policies", "SitePolicy", "success") == 1

    def bucket(le: str) -> float:
        labels = (("engine", "sync"), ("le", le), ("step", "SyncSite"))
        return samples[("xos_runtime_call_duration_seconds_bucket", labels)]

    assert [bucket(le) for le in ("0.001", "0.1", "0.25", "0.5", "60.0", "+Inf")] == [
        2,
        2,
        3,
        4,
        4,
        5,
    ]
    timed = (("engine", "sync"), ("step", "SyncSite"))
    assert samples[("xos_runtime_call_duration_seconds_count", timed)] == 5  # not `blocked`
    total = samples[("xos_runtime_call_duration_seconds_sum", timed)]
    assert total == pytest.approx(0.0005 + 0.001 + 0.2 + 75.0 + 0.3)
