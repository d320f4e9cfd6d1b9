"""Progress of a long pass: how much is done, how fast, and how long the rest will take.

A pass of 100,000 objects takes seconds to minutes, and the run summary comes only at its
end. An engine makes a `ProgressMeter` at the start of a pass and ticks it as calls finish;
every `every` seconds the meter hands a `Progress` to whoever shows it: a log line in a
running synchronizer (`logging.progress`), a bar on the terminal of `run --until-idle`.
A tick costs one clock read, so the engines tick on every completion; passes shorter than
`every` show nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

__all__ = ["Progress", "ProgressMeter", "ShowProgress"]


@attrs.frozen
class Progress:
    """Where a pass stands: `done` of `total` calls finished (`failed` of them failed),
    `running` in hand, `elapsed` seconds since the pass started; `final` on the pass's last
    report."""

    engine: str
    done: int
    total: int
    running: int = 0
    failed: int = 0
    elapsed: float = 0.0
    final: bool = False

    @property
    def rate(self) -> float:
        """Calls finished per second so far (0 before the first)."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds the rest should take at the rate so far (None before a rate is known)."""
        rate = self.rate
        if rate <= 0:
            return None
        return max(0, self.total - self.done) / rate

    def describe(self) -> str:
        """One line for a log: `sync: 40,000 done (12 failed), 60,000 pending (16 running),
        12,345/s, about 5 s left`; at the end of the pass, `sync: 100,000 done in 8.1 s,
        12,345/s`."""
        failed = f" ({self.failed:,} failed)" if self.failed else ""
        if self.final:
            return (
                f"{self.engine}: {self.done:,} done{failed} in {_duration(self.elapsed)}, "
                f"{self.rate:,.0f}/s"
            )
        running = f" ({self.running:,} running)" if self.running else ""
        pending = max(0, self.total - self.done)
        eta = self.eta
        left = f", about {_duration(eta)} left" if eta is not None else ""
        return (
            f"{self.engine}: {self.done:,} done{failed}, {pending:,} pending{running}, "
            f"{self.rate:,.0f}/s{left}"
        )


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


#: Who shows progress, and how often (seconds between reports); see `LoopEngine.progress`.
ShowProgress = Callable[[Progress], None]


class ProgressMeter:
    """Hands a `Progress` to `show` at most every `every` seconds while a pass runs.

    `finish` reports the end of the pass, once, and only if the pass reported anything
    before (a bar must come to its end; a short pass stays silent). `monotonic` is the
    clock (tests pass a fake one).
    """

    __slots__ = ("_next_at", "engine", "every", "monotonic", "show", "shown", "started", "total")

    def __init__(
        self,
        engine: str,
        total: int,
        show: ShowProgress,
        every: float,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.engine = engine
        self.total = total
        self.show = show
        self.every = every
        self.monotonic = monotonic
        self.started = monotonic()
        self._next_at = self.started + every
        self.shown = False

    def due(self) -> bool:
        """Whether `every` seconds passed since the last report (one clock read): the
        engines count what is done only then."""
        return self.monotonic() >= self._next_at

    def report(self, done: int, running: int = 0, failed: int = 0) -> None:
        """Report `done` calls finished (`failed` of them failed), `running` in hand."""
        now = self.monotonic()
        self._next_at = now + self.every
        self.shown = True
        self.show(Progress(self.engine, done, self.total, running, failed, now - self.started))

    def tick(self, done: int, running: int = 0, failed: int = 0) -> None:
        """`report` if it is due."""
        if self.due():
            self.report(done, running, failed)

    def finish(self, done: int, failed: int = 0) -> None:
        """The pass ended with `done` calls finished."""
        if not self.shown:
            return
        elapsed = self.monotonic() - self.started
        self.show(Progress(self.engine, done, self.total, 0, failed, elapsed, final=True))
