"""Pass reports: what one pass of an engine did, for `--until-idle`, `--once` and logs."""

from __future__ import annotations

from collections import Counter

import attrs

from xos_runtime.store import Key


@attrs.define
class PassReport:
    """What one pass (or phase) did; `--until-idle` and `status` read it."""

    fetched: int = 0
    attempted: int = 0
    succeeded: int = 0
    failed: set[Key] = attrs.field(factory=set)
    blocked: set[Key] = attrs.field(factory=set)
    waiting: int = 0
    next_run: float | None = None
    #: Objects this pass could not start because another process holds them (claims).
    held_elsewhere: int = 0
    outcomes: Counter[str] = attrs.field(factory=Counter)

    def merge(self, other: PassReport) -> PassReport:
        self.fetched += other.fetched
        self.attempted += other.attempted
        self.succeeded += other.succeeded
        self.failed |= other.failed
        self.blocked |= other.blocked
        self.waiting += other.waiting
        self.held_elsewhere += other.held_elsewhere
        if other.next_run is not None:
            self.next_run = (
                other.next_run if self.next_run is None else min(self.next_run, other.next_run)
            )
        self.outcomes.update(other.outcomes)
        return self
