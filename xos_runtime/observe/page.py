"""The JSON views behind the status page (`/api/...`), each a plain dict ready for `json`.

* `graph_view` - the model dependency graph, each model with its layer: 0 for a model that
  depends on nothing, else one more than the deepest model it depends on (the page draws a
  column per layer, dependencies on the left);
* `status_view` - objects per model by state, and every object not in sync with its message,
  the object at the root of its trouble (`cause`) and, for an object at fault, what it holds
  back (`holds_back`), and the `run` processes registered on the store with their claims;
* `model_view`, `object_view` - a model's objects with their states, and one object's fields.
"""

from __future__ import annotations

from typing import Any

import networkx as nx  # type: ignore[import-untyped,unused-ignore]
import sqlalchemy as sa

from xos_runtime.engines import collect_status, held_back_by, state_column
from xos_runtime.store import ModelAccessor

__all__ = ["MODEL_ROWS", "PROBLEM_ROWS", "graph_view", "model_view", "object_view", "status_view"]

#: At most this many objects per model in `model_view`, and per table in `status_view`.
MODEL_ROWS = 200
PROBLEM_ROWS = 500

#: The count keys that are no object out of sync.
_SETTLED = ("ok", "total")

Key = tuple[str, int]


def graph_view(graph: nx.DiGraph) -> dict[str, Any]:
    """Models (name, layer) and edges (from the dependent model to its dependency)."""
    layer: dict[str, int] = {}
    # an edge A -> B: A depends on B, so B's layer is settled first
    for name in reversed(list(nx.topological_sort(graph))):
        layer[name] = 1 + max((layer[d] for d in graph.successors(name)), default=-1)
    return {
        "models": [{"name": n, "layer": layer[n]} for n in sorted(graph.nodes)],
        "edges": [{"from": a, "to": b} for a, b in sorted(graph.edges)],
    }


def _root(key: Key, causes: dict[Key, Key]) -> Key:
    """Follow `held back by` links to the object at fault (a chain ends, even if it loops)."""
    seen = {key}
    while key in causes and causes[key] not in seen:
        key = causes[key]
        seen.add(key)
    return key


def status_view(accessor: ModelAccessor, now: float) -> dict[str, Any]:
    """Counts by model and state, and the objects not in sync (see the module's doc)."""
    report = collect_status(accessor, now, limit=PROBLEM_ROWS)
    causes: dict[Key, Key] = {}
    for o in report.objects:
        if o.state == "held_back":
            by = held_back_by(o.backend_status)
            if by is not None:
                causes[(o.model, o.id)] = by
    names = {(o.model, o.id): o.name for o in report.objects}
    holds: dict[Key, list[dict[str, Any]]] = {}
    for key in causes:
        held = {"model": key[0], "id": key[1], "name": names.get(key)}
        holds.setdefault(_root(key, causes), []).append(held)
    objects = []
    for o in report.objects:
        key = (o.model, o.id)
        root = _root(key, causes) if key in causes else None
        message = o.policy_status if o.state == "policy_error" else o.backend_status
        objects.append(
            {
                "model": o.model,
                "id": o.id,
                "name": o.name,
                "state": o.state,
                "message": message,
                "failures": o.failures,
                "next_run": o.next_run,
                "cause": None if root is None else {"model": root[0], "id": root[1]},
                "holds_back": holds.get(key, []),
            }
        )
    not_ok = sum(n for c in report.counts.values() for st, n in c.items() if st not in _SETTLED)
    return {
        "now": now,
        "counts": report.counts,
        "objects": objects,
        "more": max(0, not_ok - len(objects)),
        "processes": [p.to_dict() for p in report.processes],
    }


def model_view(accessor: ModelAccessor, model: str, now: float) -> dict[str, Any] | None:
    """The first `MODEL_ROWS` objects of `model` (its sub-models' too): id, name, state;
    None for a model the store does not have."""
    if model not in accessor.models.names():
        return None
    store = accessor.store
    table = store.table(model)
    name = table.c.name if "name" in table.c else sa.null()
    state = state_column(table, store.dialect, now)
    query = (
        sa.select(table.c.id, table.c.leaf_model_name, name.label("name"), state)
        .where(*store.family_filter(model))
        .order_by(table.c.id)
        .limit(MODEL_ROWS)
    )
    with store.read() as conn:
        rows = [
            {"id": int(i), "model": str(m), "name": n, "state": str(s)}
            for i, m, n, s in conn.execute(query)
        ]
    return {"model": model, "objects": rows, "limit": MODEL_ROWS}


def object_view(accessor: ModelAccessor, model: str, object_id: int) -> dict[str, Any] | None:
    """Every field of one object (bookkeeping included, links as ids); None if there is no
    such model or object."""
    if model not in accessor.models.names():
        return None
    cls = accessor.get_model_class(model)
    obj = (
        cls.objects.filter(id=object_id).first() or cls.deleted_objects.filter(id=object_id).first()
    )
    if obj is None:
        return None
    leaf = obj.as_leaf()
    return {"model": leaf.model_name, "id": object_id, "fields": leaf.to_dict()}
