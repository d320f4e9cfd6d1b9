"""Loading a synchronizer's model definitions into the core, as XOS's LoadModels did.

A synchronizer sends its xproto files; they are parsed together with the models the core
already serves (they may derive from them, link to them, and define anew the ones they
name), and the store evolves by the rules of opening it: new models and fields are added,
and what would lose stored data is refused, changing nothing. The core then serves the
new set at once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from xos_runtime.core.errors import ApiError
from xos_runtime.core.openapi import check_routes
from xos_runtime.exceptions import ModelError, SchemaChangeRefused, StoreError
from xos_runtime.models import load_models
from xos_runtime.store import ModelAccessor

__all__ = ["load_synchronizer_models"]

_one_at_a_time = threading.Lock()


def _sources(body: Any) -> list[tuple[str, str]]:
    if not isinstance(body, Mapping):
        raise ApiError(400, "the body must be a JSON object: name, xprotos")
    unknown = set(body) - {"name", "xprotos"}
    if unknown:
        key = sorted(unknown)[0]
        raise ApiError(400, f"unknown key {key!r}; expected name, xprotos", field=key)
    name, files = body.get("name"), body.get("xprotos")
    if not isinstance(name, str) or not name or "/" in name:
        raise ApiError(400, "name: expected the synchronizer's name", field="name")
    if not isinstance(files, list) or not files:
        raise ApiError(400, "xprotos: expected a list of {filename, contents}", field="xprotos")
    sources: list[tuple[str, str]] = []
    for i, item in enumerate(files):
        ok = isinstance(item, Mapping) and set(item) == {"filename", "contents"}
        ok = ok and isinstance(item["filename"], str) and isinstance(item["contents"], str)
        if not ok:
            where = f"xprotos[{i}]"
            raise ApiError(400, f"{where}: expected {{filename, contents}}", field=where)
        sources.append((f"{name}/{item['filename']}", item["contents"]))
    return sources


def load_synchronizer_models(accessor: ModelAccessor, body: Any) -> dict[str, Any]:
    """Load the models of `body` (`{"name", "xprotos": [{"filename", "contents"}]}`) into
    the store; the names of the models added or changed, and the parser's warnings."""
    sources = _sources(body)
    warnings: list[str] = []
    with _one_at_a_time:
        current = accessor.models
        try:
            merged = load_models(sources, on_warning=warnings.append, extend=current)
            check_routes(merged)
        except ModelError as exc:
            raise ApiError(400, str(exc), field="xprotos") from None
        changed = [
            m.name
            for m in merged
            if m.name not in current or m.to_dict() != current.get(m.name).to_dict()
        ]
        if changed:
            try:
                accessor.evolve(merged)
            except (SchemaChangeRefused, StoreError) as exc:
                raise ApiError(409, str(exc), field="xprotos") from None
    return {"models": changed, "warnings": warnings}
