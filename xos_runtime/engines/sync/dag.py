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
from xos_runtime.store import Key, RowView

__all__ = ["LinkPlan", "RowLoader", "dependencies", "reverse_edges"]

RowLoader = Callable[[Iterable[Key]], Mapping[Key, Mapping[str, Any]]]


class LinkPlan:
    """For each leaf model: which link columns lead to dependencies (from the model graph)."""

    def __init__(self, models: ModelSet, graph: nx.DiGraph):
        self.models = models
        self.forward: dict[str, list[tuple[str, str]]] = {}
        self.reverse: dict[str, list[tuple[str, str, frozenset[str]]]] = {}
        for model in models:
            self._plan(model.name, graph)
        # What the reverse accessors read: for each model that declares (or inherits) a link
        # some reverse accessor follows back, `(link column, root of the link's target)`.
        indexed: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for leaf, accessors in self.reverse.items():
            for column, _dep_root, family in accessors:
                for member in family:
                    indexed[member].add((column, models.root(leaf)))
        #: For each leaf model: the link columns `dependencies` indexes for reverse accessors.
        self.indexed: dict[str, list[tuple[str, str]]] = {
            leaf: sorted(columns) for leaf, columns in indexed.items()
        }
        self._columns: dict[str, list[str]] = {}
        self._slim_index: dict[Any, dict[str, int]] = {}

    def columns(self, leaf: str) -> list[str]:
        """The link columns `dependencies` reads of a row of `leaf` (besides its
        `leaf_model_name`): the engines keep only these of the pending rows."""
        found = self._columns.get(leaf)
        if found is None:
            pairs = (*self.forward.get(leaf, ()), *self.indexed.get(leaf, ()))
            found = self._columns[leaf] = sorted({column for column, _ in pairs})
        return found

    def slim(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        """What `dependencies` reads of `row`: its leaf model and link columns, as a view
        over a small tuple (a pass holds one per pending row until its DAG is built)."""
        leaf = row.get("leaf_model_name")
        index = self._slim_index.get(leaf)
        if index is None:
            names = ("leaf_model_name", *self.columns(str(leaf)))
            index = self._slim_index[leaf] = {c: i for i, c in enumerate(names)}
        return RowView(index, tuple([row.get(c) for c in index]))

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
) -> dict[Key, tuple[Key, ...]]:
    """For each pending row, the pending rows it depends on (transitively through others).

    Called once per phase with every pending row, so it runs in one pass over them: a row's
    direct links are resolved once, and only rows whose links leave the pending set start a
    walk through rows that are not pending (`load` reads those, level by level).
    """
    forward, reverse = plan.forward, plan.reverse
    by_link = _index_reverse(rows, plan) if plan.indexed else {}

    def leaf_of(row: Mapping[str, Any]) -> str:
        leaf = row.get("leaf_model_name")
        return leaf if type(leaf) is str else str(leaf)

    def reverse_deps(key: Key, accessors: list[tuple[str, str, frozenset[str]]]) -> list[Key]:
        """Pending rows that reach `key` through the reverse `accessors` of its model."""
        out: list[Key] = []
        for column, dep_root, family in accessors:
            for dep in by_link.get((column, key[0], key[1]), ()):
                if dep[0] == dep_root and leaf_of(rows[dep]) in family:
                    out.append(dep)
        return out

    def direct(key: Key, row: Mapping[str, Any]) -> list[Key]:
        """The rows `key` depends on directly, pending or not."""
        leaf = leaf_of(row)
        out: list[Key] = []
        for column, target_root in forward.get(leaf, ()):
            target = row.get(column)
            if target is not None:
                out.append((target_root, int(target)))
        accessors = reverse.get(leaf)
        if accessors:
            out.extend(reverse_deps(key, accessors))
        return out

    result: dict[Key, tuple[Key, ...]] = {}
    # Pending rows with links to rows that are not pending: resolved after the walk below.
    outside: dict[Key, list[Key]] = {}
    for key, row in rows.items():
        leaf = row.get("leaf_model_name")
        if type(leaf) is not str:  # leaf_of(row), inline: this loop runs for every row
            leaf = str(leaf)
        deps: list[Key] = []
        for column, target_root in forward.get(leaf, ()):
            target = row.get(column)
            if target is None:
                continue
            t = (target_root, target if type(target) is int else int(target))
            if t in rows:
                deps.append(t)
            elif key in outside:
                outside[key].append(t)
            else:
                outside[key] = [t]
        accessors = reverse.get(leaf)
        if accessors:
            deps.extend(reverse_deps(key, accessors))  # always pending rows (`by_link`)
        result[key] = _distinct(deps, key)
    if not outside:
        return result

    # Rows we walk through without syncing them, loaded level by level.
    others: dict[Key, list[Key]] = {}
    frontier = {t for ts in outside.values() for t in ts}
    while frontier:
        loaded = load(frontier)
        next_frontier: set[Key] = set()
        for key in frontier:
            found = loaded.get(key)
            targets = direct(key, found) if found is not None else []
            others[key] = targets
            for t in targets:
                if t not in rows and t not in others:
                    next_frontier.add(t)
        frontier = {t for t in next_frontier if t not in others}

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

    for key, targets in outside.items():
        merged = list(result[key])
        for t in targets:
            reached = memo.get(t)
            merged.extend(reach(t, set()) if reached is None else reached)
        result[key] = _distinct(merged, key)
    return result


def _distinct(deps: list[Key], key: Key) -> tuple[Key, ...]:
    """`deps` without repeats and without `key`, as a tuple (a pass holds one per pending
    row; a set each would cost four times the memory)."""
    if len(deps) < 2:
        return () if not deps or deps[0] == key else (deps[0],)
    return tuple(d for d in dict.fromkeys(deps) if d != key)


def _index_reverse(
    rows: Mapping[Key, Mapping[str, Any]], plan: LinkPlan
) -> dict[tuple[str, str, int], list[Key]]:
    """Pending rows by `(column, target root, target id)`, for the reverse accessors.

    Only link columns that some reverse accessor reads are indexed (`LinkPlan.indexed`),
    whether or not the row's own model depends on the link's target.
    """
    by_link: dict[tuple[str, str, int], list[Key]] = defaultdict(list)
    indexed = plan.indexed
    for key, row in rows.items():
        leaf = row.get("leaf_model_name")
        for column, target_root in indexed.get(leaf if type(leaf) is str else str(leaf), ()):
            target = row.get(column)
            if target is not None:
                by_link[(column, target_root, int(target))].append(key)
    return by_link


def reverse_edges(deps: Mapping[Key, Iterable[Key]]) -> dict[Key, set[Key]]:
    """Deletion order: each row waits for the rows that depended on it."""
    out: dict[Key, set[Key]] = {k: set() for k in deps}
    for key, targets in deps.items():
        for t in targets:
            out[t].add(key)
    return out
