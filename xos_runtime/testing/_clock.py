"""The fake clock of the test harness: wall-clock seconds that move only when told to."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]

#: Where a `FakeClock` starts: a fixed epoch second (2027-01-15), so stored times are
#: reproducible and plainly in the future of any real clock a test might compare with.
DEFAULT_START = 1_800_000_000.0


class FakeClock:
    """Epoch seconds for the engines and the store, moved only by `advance`.

    The harness gives it to the runtime as its clock: backoff (`next_run` in
    `backend_register`), pull-step intervals, event retries and the store's timestamps all
    read it, so `advance(seconds)` makes what waits for that time ready without waiting.
    Calling the clock returns the current time, as `time.time` does.
    """

    def __init__(self, start: float = DEFAULT_START):
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    @property
    def now(self) -> float:
        """The current time, in epoch seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by `seconds` (>= 0); return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; advance({seconds!r})")
        with self._lock:
            self._now += float(seconds)
            return self._now

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"
