"""The progress meter: when it reports, what a report says, and that short passes stay silent."""

from __future__ import annotations

from xos_runtime.engines import Progress
from xos_runtime.engines.progress import ProgressMeter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_reports_every_interval_and_once_at_the_end() -> None:
    clock = FakeClock()
    shown: list[Progress] = []
    meter = ProgressMeter("sync", 1000, shown.append, every=10.0, monotonic=clock)
    meter.tick(done=10, running=4)
    assert shown == []  # not due yet
    clock.now += 10.0
    meter.tick(done=400, running=8, failed=3)
    assert shown == [Progress("sync", 400, 1000, 8, 3, 10.0)]
    clock.now += 5.0
    meter.tick(done=600)
    assert len(shown) == 1  # 5 s since the last report
    clock.now += 5.0
    meter.finish(done=1000, failed=3)
    assert shown[-1] == Progress("sync", 1000, 1000, 0, 3, 20.0, final=True)


def test_a_short_pass_says_nothing() -> None:
    clock = FakeClock()
    shown: list[Progress] = []
    meter = ProgressMeter("policies", 5, shown.append, every=10.0, monotonic=clock)
    clock.now += 1.0
    meter.tick(done=5)
    meter.finish(done=5)
    assert shown == []


def test_the_line_gives_done_pending_rate_and_time_left() -> None:
    line = Progress("sync", 40_000, 100_000, 16, 12, 4.0).describe()
    assert line == (
        "sync: 40,000 done (12 failed), 60,000 pending (16 running), 10,000/s, about 6.0 s left"
    )
    assert Progress("sync", 0, 10, 0, 0, 0.0).eta is None
    end = Progress("delete", 100_000, 100_000, 0, 0, 125.0, final=True).describe()
    assert end == "delete: 100,000 done in 2 min 05 s, 800/s"
