"""Batched outcome writes: what engines store after each unit of work, in few transactions.

Engines write only bookkeeping columns here (`enacted`, `backend_*`, `policed`, `policy_*`),
by id, so these writes never overwrite data a user or a step changed meanwhile; and they do
not publish change notifications (bookkeeping wakes nobody), except purges.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from xos_runtime.store import ModelAccessor, ModelObject


class OutcomeWriter:
    """Collects bookkeeping writes and purges, and stores them in few transactions."""

    def __init__(self, accessor: ModelAccessor):
        self.accessor = accessor
        self.updates: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
        self.purges: list[ModelObject] = []
        self.size = 0

    def update(self, obj: ModelObject, values: dict[str, Any]) -> None:
        root = self.accessor.models.root(obj._meta.name)
        columns = tuple(sorted(values))
        self.updates.setdefault((root, columns), []).append(
            {"b_id": obj.id, **{f"b_{c}": v for c, v in values.items()}}
        )
        obj.__dict__.update(values)
        if obj._orig is not None:
            obj._orig.update(values)
        self.size += 1

    def purge(self, obj: ModelObject) -> None:
        self.purges.append(obj)
        self.size += 1

    def flush(self) -> None:
        if not self.size:
            return
        store = self.accessor.store
        touched: set[str] = set()
        with store.write(touched) as conn:
            for (root, columns), params in self.updates.items():
                table = store.table(root)
                stmt = (
                    sa.update(table)
                    .where(table.c.id == sa.bindparam("b_id"))
                    .values({c: sa.bindparam(f"b_{c}") for c in columns})
                )
                conn.execute(stmt, params)
            by_leaf: dict[str, list[int]] = {}
            for obj in self.purges:
                leaf = obj.__dict__.get("leaf_model_name") or obj._meta.name
                by_leaf.setdefault(leaf, []).append(int(obj.id))  # type: ignore[arg-type]
            for leaf, ids in by_leaf.items():
                store.purge(leaf, ids, conn)
                touched.update(store.touched_names([leaf]))
        self.updates.clear()
        self.purges.clear()
        self.size = 0
