"""Rows by key over a core: what a remote engine reads where a local one calls `load_rows`.

`POST /xosapi/v1/rows` with `{"keys": [[root, id], ...], "columns": [...]}` answers
`{"rows": [[root, id, {column: value}], ...]}`: the local accessor's `load_rows` run by the
core, so the rows are the same dicts (links as `site_id`, bookkeeping included, missing rows
absent). A request holds at most `MAX_ROW_KEYS` keys: larger sets are sent in several.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from xos_runtime.store.remote.client import CoreClient

__all__ = ["MAX_ROW_KEYS", "ROWS_PATH", "load_rows"]

#: Where a core answers rows by key (synchronizers only).
ROWS_PATH = "/xosapi/v1/rows"
#: The most keys one request may hold (the core refuses more, 400).
MAX_ROW_KEYS = 10_000


def load_rows(
    client: CoreClient, keys: Iterable[tuple[str, int]], columns: Sequence[str] = ()
) -> dict[tuple[str, int], dict[str, Any]]:
    """Rows by `(root model, id)`, live or deleted, as the core's store has them (with
    `columns`, `id` first, only those); missing rows are absent. A read: sent again after
    a lost answer, as a GET is."""
    wanted = list(dict.fromkeys((str(root), int(oid)) for root, oid in keys))
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for start in range(0, len(wanted), MAX_ROW_KEYS):
        body: dict[str, Any] = {"keys": [list(k) for k in wanted[start : start + MAX_ROW_KEYS]]}
        if columns:
            body["columns"] = list(columns)
        answer = client.post(ROWS_PATH, body, idempotent=True)
        for root, oid, row in answer["rows"]:
            found[(root, int(oid))] = row
    return found
