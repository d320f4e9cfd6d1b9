"""Outcomes: what happened to one unit of work, as frozen records passed to hooks and status."""

from __future__ import annotations

from typing import Literal

import attrs

OutcomeKind = Literal[
    "success", "deferred", "innocuous", "permanent", "error", "timeout", "blocked"
]

#: `backend_code` written for each kind (contract section 5): 0 pending/deferred, 1 in sync
#: (OK or innocuous), 2 error. A blocked object takes the code of the failure that blocked it.
BACKEND_CODES: dict[str, int] = {
    "success": 1,
    "deferred": 0,
    "innocuous": 1,
    "permanent": 2,
    "error": 2,
    "timeout": 2,
}


@attrs.frozen
class Outcome:
    """The result of one `sync_record`/`delete_record` (or policy/event handler) call.

    `message` is `"OK"` on success and the exception's text otherwise; `code` is the
    `backend_code` the runtime writes; `duration` is the call's wall time in seconds;
    `deleted` tells a deletion from a sync.
    """

    kind: OutcomeKind
    message: str = "OK"
    code: int = 1
    duration: float = 0.0
    deleted: bool = False
    retry_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "success"

    @property
    def failed(self) -> bool:
        """Whether dependents must be held back (everything but success)."""
        return self.kind != "success"
