"""`Deliveries` alone (a unit test of one class): what a batch commits, counts and observes,
with a consumer that records what it is asked and no store rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from xos_runtime.config import EventSettings
from xos_runtime.engines.events.delivery import Deliveries, RetryRules
from xos_runtime.engines.events.memory import MemoryBus
from xos_runtime.engines.outcome import Outcome, classify, success
from xos_runtime.engines.report import PassReport
from xos_runtime.steps import Event, make_event


class RecordingConsumer:
    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.asked.append(("commit", dict(offsets)))

    def seek(self, tp: tuple[str, int], offset: int) -> None:
        self.asked.append(("seek", tp, offset))

    def pause(self, tp: tuple[str, int]) -> None:
        self.asked.append(("pause", tp))


class NoAttempts:
    """The store knows of no failed call."""

    def load(self, spans: Any) -> dict[Any, Any]:
        return {}

    def failed(self, message: Any, error: str, next_run: float) -> int:
        return 1

    def forget(self, committed: Any) -> None:
        pass


def deliveries(outcome_of: Any, observed: list[tuple[Event, Outcome]]) -> Deliveries:
    rules = RetryRules(EventSettings(), MemoryBus(), lambda: 1_000.0, lambda: 0.5)
    return Deliveries(
        "step",
        "group",
        rules,
        NoAttempts(),  # type: ignore[arg-type]
        call=outcome_of,
        observer=lambda: lambda event, outcome: observed.append((event, outcome)),
        bus_error=lambda *args: None,
    )


def batch() -> list[Event]:
    # as a bus hands them out: in offset order per partition
    return [make_event("t", None, b"%d" % i, None, i % 2, i // 2) for i in range(6)]


def test_a_batch_is_counted_observed_and_committed_in_order() -> None:
    observed: list[tuple[Event, Outcome]] = []

    def outcome_of(event: Event) -> Outcome:
        if event.value == b"3":
            return classify(RuntimeError("no"), False, 0.0, False, None)
        return success(0.001)

    consumer, report = RecordingConsumer(), PassReport()
    deliveries(outcome_of, observed).handle(consumer, batch(), report)  # type: ignore[arg-type]
    # partition 1 waits at offset 1 (value 3): its later message is not called
    assert [e.value for e, _ in observed] == [b"0", b"1", b"2", b"3", b"4"]
    assert [o.kind for _, o in observed] == ["success"] * 3 + ["error", "success"]
    assert (report.attempted, report.succeeded, dict(report.outcomes)) == (
        5,
        4,
        {"success": 4, "error": 1},
    )
    assert consumer.asked == [
        ("seek", ("t", 1), 1),
        ("pause", ("t", 1)),
        ("commit", {("t", 0): 3, ("t", 1): 1}),
    ]


def test_a_bug_mid_batch_fetches_every_partition_again_from_what_was_not_handled() -> None:
    def outcome_of(event: Event) -> Outcome:
        if event.value == b"2":
            raise KeyboardInterrupt
        return success(0.001)

    consumer = RecordingConsumer()
    events = [*batch(), make_event("u", None, b"u", None, 0, 0)]  # a partition not reached
    with pytest.raises(KeyboardInterrupt):
        deliveries(outcome_of, []).handle(consumer, events, PassReport())  # type: ignore[arg-type]
    assert consumer.asked == [
        ("seek", ("t", 0), 1),  # offset 0 (value 0) was handled, offset 1 was not
        ("seek", ("t", 1), 1),
        ("seek", ("u", 0), 0),
        ("commit", {("t", 0): 1, ("t", 1): 1}),
    ]
