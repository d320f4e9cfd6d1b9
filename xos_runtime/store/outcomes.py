"""Outcome batches: what an engine stores after its units of work, as data, in one step.

An engine collects the bookkeeping it writes (`enacted`, `backend_*`, `policed`,
`policy_*`, by id, never `updated` and never data: an edit that lands meanwhile is not
overwritten and keeps its object pending), the purges of soft-deleted objects whose
`delete_record` succeeded, and what it does with its claims: the next batch to claim, the
claims to release, the claims of timed-out calls to keep, and the status texts to restore
when such a call returns. The batch is data, not code, so that it is stored the same way
whether the engine runs beside the store (`apply_batch`, here) or talks to it through a
core (`POST /xosapi/v1/outcomes`, where the core runs `apply_batch` on its behalf): one
rule, one place.

The whole batch is one atomic step. Claims come first and releases last: a transaction
that waits for another's claim rows then holds none of its own to be waited for, so no
cycle can form; rows are written in one fixed order (table, then id), so two processes
writing overlapping rows cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from xos_runtime.store.accessor import policy_pending, sync_pending
from xos_runtime.store.claims import ClaimKey, Claims, RowFilter
from xos_runtime.store.sqlstore import KeyedWrite

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from xos_runtime.store.accessor import ModelAccessor

__all__ = ["PENDING", "ClaimRequest", "ClaimResult", "OutcomeBatch", "StatusRestore", "apply_batch"]

#: What a claim may require of its rows, by name: the engines' own pending conditions.
PENDING: dict[str, RowFilter] = {
    "sync": sync_pending(False),
    "sync_deleted": sync_pending(True),
    "policy": policy_pending(False),
    "policy_deleted": policy_pending(True),
}


@attrs.frozen
class ClaimRequest:
    """Claim `keys` that nobody holds and that are still `pending` (a name of `PENDING`),
    then re-read `columns` (`id` first) of the rows obtained, in the same transaction: the
    re-read sees whatever another process finished before it released an object.
    `adopt_own` also counts as obtained the keys this owner already holds: a retry whose
    earlier try may have committed without its answer arriving."""

    keys: Sequence[ClaimKey]
    pending: str | None
    columns: tuple[str, ...]
    adopt_own: bool = False


@attrs.frozen
class ClaimResult:
    """The keys a `ClaimRequest` obtained, and their re-read `columns` (missing rows,
    purged meanwhile, are absent)."""

    held: set[ClaimKey]
    rows: dict[ClaimKey, dict[str, Any]]


@attrs.frozen
class StatusRestore:
    """Set `backend_status` of `key` to `text` if it still reads `expected` (a timed-out
    call that returned: its object's "still running" note goes)."""

    key: ClaimKey
    expected: str
    text: str


@attrs.define
class OutcomeBatch:
    """One step of an engine's outcomes (see the module docstring).

    `updates` are rows (`id` and the values) grouped by (root model, columns), the columns
    in the same order in every row of a group; `purges` are ids by leaf model.
    """

    updates: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = attrs.Factory(dict)
    purges: dict[str, list[int]] = attrs.Factory(dict)
    claim: ClaimRequest | None = None
    release: Sequence[ClaimKey] = ()
    keep: Sequence[ClaimKey] = ()
    restore: Sequence[StatusRestore] = ()

    @property
    def size(self) -> int:
        return sum(map(len, self.updates.values())) + sum(map(len, self.purges.values()))

    def empty(self) -> bool:
        return not (self.size or self.claim or self.release or self.keep or self.restore)

    def needs_claims(self) -> bool:
        """Whether storing the batch acts on an engine's claims."""
        return bool(self.claim or self.release or self.keep)


def _by_id(row: Mapping[str, Any]) -> int:
    return int(row["id"])


def apply_batch(
    accessor: ModelAccessor, batch: OutcomeBatch, claims: Claims | None = None
) -> ClaimResult | None:
    """Store `batch` in one atomic step, the claims' part as `claims` (required when the
    batch claims, releases or keeps); returns what its claim obtained (None without one).

    Without a claim, kept claims, restores and purges, the step is `SqlStore.write_batch`
    (one statement on PostgreSQL); else one transaction. On failure nothing is written:
    store the same batch again (with `adopt_own` on its claim).
    """
    if batch.needs_claims() and claims is None:
        raise ValueError("a batch that claims, releases or keeps claims needs the claims")
    store = accessor.store
    writes = [
        KeyedWrite(store.table(root), ("id",), sorted(rows, key=_by_id), columns)
        for (root, columns), rows in sorted(batch.updates.items())
    ]
    releases = [claims.release_write(batch.release)] if claims is not None and batch.release else []
    if not (batch.claim or batch.keep or batch.restore or batch.purges):
        if writes or releases:
            store.write_batch([*writes, *releases])
        return None
    result: ClaimResult | None = None
    touched: set[str] = set()
    with store.write(touched, durable=False) as conn:
        for w in writes:
            store.write_by_keys(conn, w)
        for leaf, ids in sorted(batch.purges.items()):
            store.purge(leaf, ids, conn)
            touched.update(store.touched_names([leaf]))
        if batch.claim is not None:
            assert claims is not None
            result = _claim(accessor, claims, batch.claim, conn)
        if batch.keep:
            assert claims is not None
            claims.mark_abandoned(batch.keep, conn)
        for r in sorted(batch.restore, key=lambda r: r.key):
            table = store.table(r.key[0])
            conn.execute(
                sa.update(table)
                .where(table.c.id == r.key[1], table.c.backend_status == r.expected)
                .values(backend_status=r.text)
            )
        for w in releases:
            store.write_by_keys(conn, w)
    return result


def _claim(
    accessor: ModelAccessor, claims: Claims, request: ClaimRequest, conn: Connection
) -> ClaimResult:
    where = PENDING[request.pending] if request.pending is not None else None
    held = claims.claim_in(conn, request.keys, adopt_own=request.adopt_own, where=where)
    # In the claim's transaction, by a statement of its own: whatever another process
    # finished before it released the object is visible here (the claim's own statement
    # may have waited for that release but reads an older snapshot).
    rows = accessor.load_rows(held, conn, columns=request.columns) if held else {}
    return ClaimResult(held, rows)
