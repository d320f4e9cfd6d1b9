"""The object-level dependency DAG of one pass, built from actual links in O(objects + links).

The original compared every pair of pending objects (O(n²), reference 2.3-2.4). Here each
pending object looks only along the links its model graph says matter: a forward link gives
the id of the object it depends on directly; a reverse accessor (from a model-deps file) is
answered from an index of the pending objects' link columns. When a forward link reaches an
object that is not pending, the walk continues through it (loading such rows in batches, once
per pass), so `Instance -> Slice -> Site` still orders an Instance after a pending Site when
its Slice is already in sync.

In the deletion phase the edges are reversed: an object is deleted after the objects that
depend on it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import networkx as nx

from xos_runtime.models.definitions import ModelSet

Key = tuple[str, int]  # (root model, id): identity of a row across sub-models
RowLoader = Callable[[Iterable[Key]], Mapping[Key, Mapping[str, Any]]]


class LinkPlan:
    """For each leaf model: which link columns lead to dependencies (from the model graph)."""

    def __init__(self, models: ModelSet, graph: nx.DiGraph):
        self.models = models
        self.forward: dict[str, list[tuple[str, str]]] = {}
        self.reverse: dict[str, list[tuple[str, str, frozenset[str]]]] = {}
        for model in models:
            self._plan(model.name, graph)

    def _plan(self, leaf: str, graph: nx.DiGraph) -> None:
        models = self.models
        links = {link.name: link for link in models.all_links(leaf)}
        forward: list[tuple[str, str]] = []
        reverse: list[tuple[str, str, frozenset[str]]] = []
        for anc in models.ancestors(leaf):
            if anc not in graph:
                continue
            pairs: list[tuple[str, str, str | None]] = [
                (target, src, dst)
                for target in graph.successors(anc)
                for src, dst in graph.edges[anc, target].get("links", ())
            ]
            pairs.extend((anc, src, dst) for src, dst in graph.nodes[anc].get("self_links", ()))
            for target, src, _dst in pairs:
                if target not in models:
                    continue
                if src in links:
                    forward.append((links[src].column, models.root(links[src].target)))
                    continue
                for declaring, link in models.links_to(anc):
                    if link.reverse_name == src and declaring in models.descendants(target):
                        family = frozenset(models.descendants(declaring))
                        reverse.append((link.column, models.root(declaring), family))
        self.forward[leaf] = sorted(set(forward))
        self.reverse[leaf] = sorted(set(reverse), key=lambda r: (r[0], r[1]))


def dependencies(
    rows: Mapping[Key, Mapping[str, Any]],
    plan: LinkPlan,
    load: RowLoader,
) -> dict[Key, set[Key]]:
    """For each pending row, the pending rows it depends on (transitively through others)."""
    # Index pending rows by (target root, target id, column) for reverse accessors.
    by_link: dict[tuple[str, str, int], list[Key]] = defaultdict(list)
    for key, row in rows.items():
        leaf = str(row.get("leaf_model_name"))
        for column, target_root in plan.forward.get(leaf, ()):
            target = row.get(column)
            if target is not None:
                by_link[(column, target_root, int(target))].append(key)

    def direct(key: Key, row: Mapping[str, Any]) -> list[Key]:
        leaf = str(row.get("leaf_model_name"))
        out: list[Key] = []
        for column, target_root in plan.forward.get(leaf, ()):
            target = row.get(column)
            if target is not None:
                out.append((target_root, int(target)))
        for column, dep_root, family in plan.reverse.get(leaf, ()):
            for dep in by_link.get((column, key[0], key[1]), ()):
                if str(rows[dep].get("leaf_model_name")) in family and dep[0] == dep_root:
                    out.append(dep)
        return out

    direct_of: dict[Key, list[Key]] = {k: direct(k, r) for k, r in rows.items()}
    # Rows we walk through without syncing them, loaded level by level.
    others: dict[Key, list[Key]] = {}
    frontier = {t for ts in direct_of.values() for t in ts if t not in rows}
    while frontier:
        loaded = load(frontier)
        next_frontier: set[Key] = set()
        for key in frontier:
            found = loaded.get(key)
            targets = direct(key, found) if found is not None else []
            others[key] = targets
            next_frontier.update(t for t in targets if t not in rows and t not in others)
        frontier = next_frontier - set(others)

    memo: dict[Key, frozenset[Key]] = {}

    def reach(key: Key, visiting: set[Key]) -> frozenset[Key]:
        """Pending rows reachable from a row that is not itself pending."""
        if key in memo:
            return memo[key]
        if key in visiting:
            return frozenset()
        visiting.add(key)
        found: set[Key] = set()
        for t in others.get(key, ()):
            if t in rows:
                found.add(t)
            else:
                found.update(reach(t, visiting))
        visiting.discard(key)
        memo[key] = frozenset(found)
        return memo[key]

    result: dict[Key, set[Key]] = {}
    for key, targets in direct_of.items():
        deps: set[Key] = set()
        for t in targets:
            if t in rows:
                deps.add(t)
            else:
                deps.update(reach(t, set()))
        deps.discard(key)
        result[key] = deps
    return result


def reverse_edges(deps: Mapping[Key, set[Key]]) -> dict[Key, set[Key]]:
    """Deletion order: each row waits for the rows that depended on it."""
    out: dict[Key, set[Key]] = {k: set() for k in deps}
    for key, targets in deps.items():
        for t in targets:
            out[t].add(key)
    return out
