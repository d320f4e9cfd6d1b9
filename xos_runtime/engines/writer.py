"""Batched outcome writes: what engines store after each unit of work, in few transactions.

Engines write only bookkeeping columns here (`enacted`, `backend_*`, `policed`, `policy_*`),
by id, so these writes never overwrite data a user or a step changed meanwhile; and they do
not publish change notifications (bookkeeping wakes nobody), except purges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from xos_runtime.store import KeyedWrite, ModelAccessor, ModelObject


class OutcomeWriter:
    """Collects bookkeeping writes and purges, and stores them in few transactions."""

    def __init__(self, accessor: ModelAccessor):
        self.accessor = accessor
        self.updates: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
        self.purges: list[ModelObject] = []
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
        self.purges.append(obj)
        self.size += 1

    def flush(
        self,
        also: Callable[[Connection], None] | None = None,
        then: Sequence[KeyedWrite] = (),
    ) -> None:
        """Store what was collected in one atomic step; `also(conn)` runs inside it, and the
        writes `then` (claim releases) come last.

        Without `also` and purges, the step is `SqlStore.write_batch` (one statement on
        PostgreSQL); else one transaction. Rows are written in one fixed order (table, then
        id), so two processes writing overlapping rows cannot deadlock. On failure nothing is
        forgotten: call again.
        """
        if not self.size and also is None and not then:
            return
        store = self.accessor.store
        writes = [
            KeyedWrite(store.table(root), ("id",), sorted(updates, key=_by_id), columns)
            for (root, columns), updates in sorted(self.updates.items())
        ]
        if also is None and not self.purges:
            store.write_batch([*writes, *then])
        else:
            touched: set[str] = set()
            with store.write(touched, durable=False) as conn:
                for w in writes:
                    store.write_by_keys(conn, w)
                by_leaf: dict[str, list[int]] = {}
                for obj in self.purges:
                    by_leaf.setdefault(obj.leaf_name, []).append(int(obj.id))  # type: ignore[arg-type]
                for leaf, ids in by_leaf.items():
                    store.purge(leaf, ids, conn)
                    touched.update(store.touched_names([leaf]))
                if also is not None:
                    also(conn)
                for w in then:
                    store.write_by_keys(conn, w)
        self.updates.clear()
        self.purges.clear()
        self.size = 0


def _by_id(update: dict[str, Any]) -> int:
    return int(update["id"])
