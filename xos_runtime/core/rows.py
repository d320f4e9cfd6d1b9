"""The rows route (`POST /xosapi/v1/rows`): rows by key for remote engines.

A remote sync engine walks links and re-reads what it claimed by `(root model, id)`, as a
local one calls `ModelAccessor.load_rows`: this route runs that very call on the core's
store, so a remote engine sees the same dicts. Synchronizers only (the rows hold every
column, bookkeeping included). The body is checked whole first: a bad one is a 400 naming
its field; at most `MAX_ROW_KEYS` keys per request (the client splits larger sets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xos_runtime.core.bodies import MAX_ID
from xos_runtime.core.errors import ApiError
from xos_runtime.store import ModelAccessor
from xos_runtime.store.remote.rows import MAX_ROW_KEYS

__all__ = ["read_rows"]

_FIELDS = ("keys", "columns")


def _keys(accessor: ModelAccessor, raw: Any) -> list[tuple[str, int]]:
    if not isinstance(raw, list):
        raise ApiError(400, "keys: expected a list of [model, id]", field="keys")
    if len(raw) > MAX_ROW_KEYS:
        raise ApiError(
            400, f"keys: at most {MAX_ROW_KEYS} per request, got {len(raw)}", field="keys"
        )
    models = accessor.models
    keys: list[tuple[str, int]] = []
    for i, key in enumerate(raw):
        ok = isinstance(key, list) and len(key) == 2 and isinstance(key[0], str)
        ok = ok and key[0] in models and isinstance(key[1], int) and not isinstance(key[1], bool)
        if not ok or not 0 < key[1] <= MAX_ID:
            raise ApiError(400, f"keys[{i}]: expected [model, id], got {key!r:.80}", field="keys")
        keys.append((key[0], key[1]))
    return keys


def _columns(accessor: ModelAccessor, raw: Any, roots: set[str]) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise ApiError(400, "columns: expected a list of column names", field="columns")
    if raw and raw[0] != "id":
        raise ApiError(400, "columns: the first must be id", field="columns")
    for root in sorted(roots):
        table = accessor.store.table(root)
        for name in raw:
            if name not in table.c:
                raise ApiError(400, f"columns: {root} has no column {name!r:.80}", field="columns")
    return tuple(raw)


def read_rows(accessor: ModelAccessor, body: Any) -> dict[str, Any]:
    """`{"rows": [[root, id, row], ...]}` of the body's keys (`accessor.load_rows`)."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "the body must be a JSON object: keys, columns")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise ApiError(
            400, f"unknown key {unknown[0]!r:.80}; expected keys, columns", field=unknown[0]
        )
    keys = _keys(accessor, body.get("keys"))
    columns = _columns(accessor, body.get("columns"), {root for root, _ in keys})
    found = accessor.load_rows(keys, columns=columns)
    return {"rows": [[root, oid, row] for (root, oid), row in found.items()]}
