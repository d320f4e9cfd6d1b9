"""Who is saving: the caller kind that decides which timestamps a save moves.

XOS decides what is pending from timestamps, and which timestamp a save moves depends on who
saves (reference, section 1.9):

* a user (the CLI, `connect()`, any code outside an engine) moves `updated`;
* a sync step moves `changed_by_step` when it changes data, never `updated`;
* a model policy moves `changed_by_policy` when it changes data, never `updated`;
* a pull or event step moves nothing unless it passes `always_update_timestamp=True`.

Engines mark the code they run with `acting_as(...)`; the mark is a context variable, so it
follows the call stack in each worker thread and never leaks into another thread.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import Literal

CallerKind = Literal["user", "sync", "policy", "pull", "event"]
CALLER_KINDS: tuple[CallerKind, ...] = ("user", "sync", "policy", "pull", "event")

_caller: contextvars.ContextVar[CallerKind] = contextvars.ContextVar(
    "xos_runtime_caller", default="user"
)


def current_caller() -> CallerKind:
    return _caller.get()


class acting_as:
    """Run the block as `kind` (one of `CALLER_KINDS`); saves inside follow that kind's rules.

    A class rather than a generator-based context manager: engines enter it once per call,
    tens of thousands of times a pass, and this costs less than half as much."""

    __slots__ = ("_token", "kind")

    def __init__(self, kind: CallerKind):
        if kind not in CALLER_KINDS:
            raise ValueError(f"unknown caller kind {kind!r}; expected one of {CALLER_KINDS}")
        self.kind = kind

    def __enter__(self) -> None:
        self._token = _caller.set(self.kind)

    def __exit__(self, *exc: object) -> None:
        _caller.reset(self._token)


class MonotonicClock:
    """Wall-clock epoch seconds that never repeat or go backwards within this process.

    Pending-ness compares timestamps (`enacted < updated`), so two saves must never get the
    same stamp, and a clock step backwards must not make a new edit look older than the last
    sync. The store also guards each row in SQL (`updated` only grows); this guards the
    process-wide sequence. `source` is injectable for tests.
    """

    #: Smallest step, chosen to stay well above a double's resolution at epoch ~2e9 (2.4e-7).
    STEP = 1e-6

    def __init__(self, source: Callable[[], float] = time.time):
        self._source = source
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            now = self._source()
            if now <= self._last:
                now = self._last + self.STEP
            self._last = now
            return now
