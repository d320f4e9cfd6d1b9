"""Batched outcome writes: what engines store after each unit of work, in few steps.

Engines write only bookkeeping columns here (`enacted`, `backend_*`, `policed`, `policy_*`),
by id, so these writes never overwrite data a user or a step changed meanwhile; and they do
not publish change notifications (bookkeeping wakes nobody), except purges. What is
collected goes to the store as one `OutcomeBatch` (`store/outcomes.py`), through the
accessor: stored in place on a local store, sent to the core by a remote accessor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xos_runtime.store import (
    ClaimKey,
    ClaimRequest,
    ClaimResult,
    Claims,
    ModelAccessor,
    ModelObject,
    OutcomeBatch,
    StatusRestore,
)


class OutcomeWriter:
    """Collects bookkeeping writes and purges, and stores them in few steps."""

    def __init__(self, accessor: ModelAccessor):
        self.accessor = accessor
        self.updates: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
        self.purges: dict[str, list[int]] = {}
        self.size = 0

    def update(self, obj: ModelObject, values: dict[str, Any], root: str | None = None) -> None:
        """Set `values` on `obj`'s row (give the same columns in the same order each time:
        rows are grouped by them); `root`, when known, is the root model of `obj`."""
        group = (root or obj.store_key[0], tuple(values))
        rows = self.updates.get(group)
        if rows is None:
            rows = self.updates[group] = []
        rows.append({"id": obj.id, **values})
        obj.note_stored(values)
        self.size += 1

    def purge(self, obj: ModelObject) -> None:
        self.purges.setdefault(obj.leaf_name, []).append(int(obj.id))  # type: ignore[arg-type]
        self.size += 1

    def flush(
        self,
        claims: Claims | None = None,
        *,
        claim: ClaimRequest | None = None,
        release: Sequence[ClaimKey] = (),
        keep: Sequence[ClaimKey] = (),
        restore: Sequence[StatusRestore] = (),
    ) -> ClaimResult | None:
        """Store what was collected in one atomic step, with what `claims` does meanwhile:
        `claim` the next batch, `release` claims, `keep` the claims of timed-out calls,
        `restore` status texts; returns what the claim obtained.

        On failure nothing is forgotten: call again.
        """
        batch = OutcomeBatch(self.updates, self.purges, claim, release, keep, restore)
        if batch.empty():
            return None
        result = self.accessor.store_outcomes(batch, claims)
        self.updates = {}
        self.purges = {}
        self.size = 0
        return result
