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

from xos_runtime.core.bodies import column_names, object_keys
from xos_runtime.core.errors import ApiError
from xos_runtime.store import ModelAccessor
from xos_runtime.store.remote.rows import MAX_ROW_KEYS

__all__ = ["read_rows"]

_FIELDS = ("keys", "columns")


def read_rows(accessor: ModelAccessor, body: Any) -> dict[str, Any]:
    """`{"rows": [[root, id, row], ...]}` of the body's keys (`accessor.load_rows`)."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "the body must be a JSON object: keys, columns")
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise ApiError(
            400, f"unknown key {unknown[0]!r:.80}; expected keys, columns", field=unknown[0]
        )
    keys = object_keys(accessor, body.get("keys"), "keys", limit=MAX_ROW_KEYS)
    raw = body.get("columns")
    columns = () if raw is None else column_names(accessor, raw, [r for r, _ in keys], "columns")
    found = accessor.load_rows(keys, columns=columns)
    return {"rows": [[root, oid, row] for (root, oid), row in found.items()]}
