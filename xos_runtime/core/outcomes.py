"""Outcome writes in batches: what a remote engine stores after its units of work.

The same writes the local engines make (`engines.writer.OutcomeWriter`): bookkeeping
columns set by id (`enacted`, `policed`, `backend_*`, `policy_*`, `changed_by_*`), never
`updated` and never data, so an edit that lands meanwhile is not overwritten and keeps its
object pending; and purges of soft-deleted objects whose `delete_record` succeeded. A batch
is checked whole, then written in one transaction: all of it, or (a 4xx) none of it. Only
the purges wake anyone (bookkeeping is no change of the objects).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from xos_runtime.core.bodies import MAX_ID
from xos_runtime.core.errors import ApiError
from xos_runtime.exceptions import ObjectValidationError
from xos_runtime.models.definitions import USER_SETTABLE_FLAGS, is_bookkeeping
from xos_runtime.store import KeyedWrite, ModelAccessor
from xos_runtime.store.values import check_value

__all__ = ["MAX_BATCH", "is_outcome_field", "write_outcomes"]

#: Most updates and purges in one batch.
MAX_BATCH = 10_000

#: Bookkeeping an outcome never writes: identity, user stamps, and the users' flags.
_NOT_OUTCOMES = frozenset({"id", "leaf_model_name", "deleted", "created", "updated"})


def is_outcome_field(name: str) -> bool:
    """Whether an outcome may write the bookkeeping field `name`."""
    return is_bookkeeping(name) and name not in _NOT_OUTCOMES | USER_SETTABLE_FLAGS


def _entries(body: Mapping[str, Any], key: str) -> list[Any]:
    entries = body.get(key, [])
    if not isinstance(entries, list):
        raise ApiError(400, f"{key}: expected a list", field=key)
    return entries


def _target(accessor: ModelAccessor, entry: Any, where: str) -> tuple[str, int]:
    if not isinstance(entry, Mapping):
        raise ApiError(400, f"{where}: expected an object with model and id", field=where)
    model, oid = entry.get("model"), entry.get("id")
    if not isinstance(model, str) or not accessor.has_model_class(model):
        raise ApiError(400, f"{where}.model: no model named {model!r}", field=f"{where}.model")
    if isinstance(oid, bool) or not isinstance(oid, int) or not 0 < oid <= MAX_ID:
        raise ApiError(400, f"{where}.id: expected an object id, got {oid!r}", field=f"{where}.id")
    return model, oid


def _fields(accessor: ModelAccessor, model: str, fields: Any, where: str) -> dict[str, Any]:
    if not isinstance(fields, Mapping) or not fields:
        raise ApiError(400, f"{where}.fields: expected an object of fields", field=where)
    meta = accessor.get_model_class(model).model_meta()
    values: dict[str, Any] = {}
    for name, value in fields.items():
        at = f"{where}.fields.{name}"
        if name not in meta.fields or not is_outcome_field(name):
            raise ApiError(400, f"{at}: not a field an outcome writes", field=at)
        try:
            values[name] = check_value(model, meta.fields[name], value)
        except ObjectValidationError as exc:
            raise ApiError(400, f"{at}: {exc}", field=at) from None
        if isinstance(values[name], float) and not math.isfinite(values[name]):
            raise ApiError(400, f"{at}: not a finite number", field=at)
    return values


def write_outcomes(accessor: ModelAccessor, body: Any) -> dict[str, int]:
    """Check and store one batch: `{"updates": [{"model", "id", "fields"}], "purges":
    [{"model", "id"}]}`. Returns how many updates and purges it held."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "the body must be a JSON object with updates and purges")
    unknown = set(body) - {"updates", "purges"}
    if unknown:
        name = sorted(unknown)[0]
        raise ApiError(400, f"unknown key {name!r}; expected updates, purges", field=name)
    updates, purges = _entries(body, "updates"), _entries(body, "purges")
    if len(updates) + len(purges) > MAX_BATCH:
        raise ApiError(413, f"at most {MAX_BATCH} updates and purges in one batch")
    store = accessor.store
    grouped: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for i, entry in enumerate(updates):
        model, oid = _target(accessor, entry, f"updates[{i}]")
        values = _fields(accessor, model, entry.get("fields"), f"updates[{i}]")
        key = (store.models.root(model), tuple(sorted(values)))
        grouped.setdefault(key, []).append({"id": oid, **values})
    doomed: dict[str, list[tuple[int, str]]] = {}
    for i, entry in enumerate(purges):
        model, oid = _target(accessor, entry, f"purges[{i}]")
        doomed.setdefault(store.models.root(model), []).append((oid, f"purges[{i}]"))
    writes = [
        KeyedWrite(store.table(root), ("id",), sorted(rows, key=lambda r: int(r["id"])), columns)
        for (root, columns), rows in sorted(grouped.items())
    ]
    touched: set[str] = set()
    with store.write(touched, durable=False) as conn:
        for w in writes:
            store.write_by_keys(conn, w)
        for root, targets in sorted(doomed.items()):
            table = store.table(root)
            ids = [oid for oid, _ in targets]
            rows = conn.execute(
                sa.select(table.c.id, table.c.leaf_model_name, table.c.deleted).where(
                    table.c.id.in_(ids)
                )
            ).all()
            state = {int(r[0]): (str(r[1]), bool(r[2])) for r in rows}
            by_leaf: dict[str, list[int]] = {}
            for oid, where in targets:
                found = state.get(oid)
                if found is None:
                    continue  # purged already: a retried batch
                leaf, deleted = found
                if not deleted:
                    raise ApiError(409, f"{where}: {root} id {oid} is not deleted", field=where)
                by_leaf.setdefault(leaf, []).append(oid)
            for leaf, leaf_ids in sorted(by_leaf.items()):
                store.purge(leaf, leaf_ids, conn)
                touched.update(store.touched_names([leaf]))
    return {"updated": len(updates), "purged": len(purges)}
