"""Batched outcome writes: what engines store after each unit of work, in few transactions.

Engines write only bookkeeping columns here (`enacted`, `backend_*`, `policed`, `policy_*`),
by id, so these writes never overwrite data a user or a step changed meanwhile; and they do
not publish change notifications (bookkeeping wakes nobody), except purges.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from xos_runtime.store import ModelAccessor, ModelObject


class OutcomeWriter:
    """Collects bookkeeping writes and purges, and stores them in few transactions."""

    def __init__(self, accessor: ModelAccessor):
        self.accessor = accessor
        self.updates: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
        self.purges: list[ModelObject] = []
        self.size = 0

    def update(self, obj: ModelObject, values: dict[str, Any]) -> None:
        root = obj.store_key[0]
        columns = tuple(sorted(values))
        self.updates.setdefault((root, columns), []).append({"id": obj.id, **values})
        obj.note_stored(values)
        self.size += 1

    def purge(self, obj: ModelObject) -> None:
        self.purges.append(obj)
        self.size += 1

    def flush(self, also: Callable[[Connection], None] | None = None) -> None:
        """Store what was collected in one transaction; `also(conn)` runs inside it.

        Rows are written in one fixed order (table, then id), so two processes writing
        overlapping rows cannot deadlock. On failure nothing is forgotten: call again.
        """
        if not self.size and also is None:
            return
        store = self.accessor.store
        touched: set[str] = set()
        with store.write(touched, durable=False) as conn:
            for (root, columns), updates in sorted(self.updates.items()):
                rows = sorted(updates, key=_by_id)
                store.write_by_keys(conn, store.table(root), ["id"], rows, set_columns=columns)
            by_leaf: dict[str, list[int]] = {}
            for obj in self.purges:
                leaf = obj.leaf_name
                by_leaf.setdefault(leaf, []).append(int(obj.id))  # type: ignore[arg-type]
            for leaf, ids in by_leaf.items():
                store.purge(leaf, ids, conn)
                touched.update(store.touched_names([leaf]))
            if also is not None:
                also(conn)
        self.updates.clear()
        self.purges.clear()
        self.size = 0


def _by_id(update: dict[str, Any]) -> int:
    return int(update["id"])
