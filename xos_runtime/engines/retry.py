"""The retry rule: how long a unit of work waits after it failed, for every engine.

The sync engine keeps the result in each row's `backend_register` (`register.py`), the policy
engine in memory, the event engine per message in the store (`EventAttempts`); the rule is the
same for all three, and lives here so that a fix lands once:

* a failure counts (`failures` grows by one) and waits `backoff.delay(failures)`, the config's
  `sync.backoff`, `policies.backoff` or `events.backoff`;
* a deferral (`DeferredException`) does not count: it waits the `delay` the step gave, else
  the first backoff step, whatever failures came before it;
* every wait is at least `MIN_WAIT`, so that a failure always sets its retry in the future
  (contract section 5).

What a permanent failure means (no retry until the object changes, a message skipped) is each
engine's to say; the wait it is given is the rule's.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

import attrs

__all__ = ["MIN_WAIT", "Backoff", "Retry", "next_retry"]

#: The shortest wait after a failure (seconds): a retry time is always ahead of the failure.
MIN_WAIT = 1e-3


class Backoff(Protocol):
    """How long to wait after failures (`BackoffSettings` of the config)."""

    def delay(self, failures: int, rand: float) -> float: ...


@attrs.frozen
class Retry:
    """When a unit of work that just failed runs again."""

    #: The failures that grow the backoff, this one included (a deferral adds none).
    failures: int
    #: Seconds to wait, as the logs print it.
    wait: float
    #: Epoch seconds when it is due: `now + wait`, at least `MIN_WAIT` ahead.
    at: float


def next_retry(
    backoff: Backoff,
    failures: int,
    *,
    now: float,
    deferred: bool = False,
    delay: float | None = None,
    rand: Callable[[], float] = random.random,
) -> Retry:
    """The retry after one more failure, `failures` counted ones before it (module docstring).

    `delay` is a deferral's own wait (`DeferredException(delay=...)`); `rand` draws the
    jitter, and is called only when the backoff decides the wait.
    """
    if not deferred:
        failures += 1
    if delay is not None:
        wait = delay
    else:  # a deferral waits the first step, whatever errors came before it
        wait = backoff.delay(1 if deferred else max(1, failures), rand())
    return Retry(failures, wait, now + max(wait, MIN_WAIT))
