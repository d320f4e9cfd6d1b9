"""The model dependency graph: which models must be synced before which.

Built at start-up (and by `xos-runtime models graph`) from the XOS model-deps JSON file, the
`manytoone` links of the xproto, or both. The engines use it to order work: an edge
`A -> B` means "A depends on B": B's objects are synced before A's and deleted after them.

Decisions that differ from the XOS Synchronizer, on purpose:

* Every `(src_accessor, dst_accessor)` pair of an edge is kept in the edge attribute `links`;
  XOS kept only the last one per model pair, so a second link between two models was
  invisible to the object-level dependency test.
* Self-references are not edges (a self-edge would be a cycle) but are kept on the node as
  `graph.nodes[name]["self_links"]`, because objects of one model can depend on each other.
* A cycle is refused when the graph is built, with the models of the cycle in order; XOS
  failed on it at every pass instead.
* Inherited links: a link declared by a model also gives an edge from every model derived
  from it, because objects of a sub-model carry the link too and the engines look edges up by
  an object's leaf model. Targets are not expanded: an edge `A -> B` also covers objects whose
  leaf model derives from B (use `ModelSet.descendants(B)` for that). Entries of the model-deps
  file are taken as written, for the model they name only, as XOS did.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# networkx ships no type hints; `unused-ignore` keeps this quiet once types-networkx is added.
import networkx as nx  # type: ignore[import-untyped,unused-ignore]

from xos_runtime.config.text import NotUtf8Error, decode_utf8
from xos_runtime.exceptions import ModelGraphError
from xos_runtime.models.definitions import ModelSet

__all__ = [
    "GRAPH_FORMATS",
    "LINKS_ORIGIN",
    "build_model_graph",
    "deletion_order",
    "format_graph",
    "sync_order",
]

#: Output formats of `format_graph`.
GRAPH_FORMATS = ("text", "dot", "json")

#: How edges derived from xproto links are named in messages and in the `origins` attribute.
LINKS_ORIGIN = "xproto links"

#: `(src_accessor, dst_accessor)`: the attribute of a dependent object that reaches its
#: dependency, and the attribute of the dependency that reaches back (None if there is none).
LinkPair = tuple[str, str | None]

_ENTRY_SHAPE = '["PeerModel", "src_accessor", "dst_accessor"]'


def build_model_graph(
    models: ModelSet,
    deps_file: str | os.PathLike[str] | None = None,
    deps: Mapping[str, Any] | None = None,
    use_links: bool = True,
) -> nx.DiGraph:
    """Build the dependency graph of `models`; every model of the set is a node.

    Sources are combined: the model-deps file `deps_file`, an already loaded mapping `deps`
    of the same shape, and (if `use_links`) the `manytoone` links. Edge attributes: `links`
    (list of `LinkPair`, every pair once) and `origins` (where the edge came from). Raises
    `ModelGraphError` for a malformed or unreadable deps file, an unknown model in it, or a
    dependency cycle.
    """
    graph = nx.DiGraph()
    for model in models:
        graph.add_node(model.name, self_links=[])
    if deps_file is not None:
        label = str(deps_file)
        _add_deps(graph, models, _read_deps_file(deps_file), label)
    if deps is not None:
        _add_deps(graph, models, deps, "<deps>")
    if use_links:
        _add_links(graph, models)
    _check_acyclic(graph)
    return graph


def _add_pair(graph: nx.DiGraph, src: str, dst: str, pair: LinkPair, origin: str) -> None:
    if src == dst:
        self_links: list[LinkPair] = graph.nodes[src]["self_links"]
        if pair not in self_links:
            self_links.append(pair)
        return
    if not graph.has_edge(src, dst):
        graph.add_edge(src, dst, links=[], origins=[])
    data = graph.edges[src, dst]
    if pair not in data["links"]:
        data["links"].append(pair)
    if origin not in data["origins"]:
        data["origins"].append(origin)


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, for shape errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _read_deps_file(path: str | os.PathLike[str]) -> Any:
    try:
        text = decode_utf8(Path(path).read_bytes())
    except NotUtf8Error as exc:
        raise ModelGraphError(exc.at(path)) from None
    except OSError as exc:
        raise ModelGraphError(
            f"{path}: cannot read model-deps file: {exc.strerror or exc}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelGraphError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


def _add_deps(graph: nx.DiGraph, models: ModelSet, deps: Any, label: str) -> None:
    """Add the edges of one model-deps document, checking its shape as it goes."""
    if not isinstance(deps, Mapping):
        raise ModelGraphError(
            f"{label}: expected a JSON object mapping model names to lists of {_ENTRY_SHAPE}, "
            f"got {_json_type(deps)}"
        )
    for name, entries in deps.items():
        if not isinstance(name, str) or name not in models:
            raise ModelGraphError(f"{label}: {name!r}: unknown model {name!r}")
        if not isinstance(entries, list | tuple):
            raise ModelGraphError(
                f"{label}: {name!r}: expected a list of {_ENTRY_SHAPE}, got {_json_type(entries)}"
            )
        for index, entry in enumerate(entries):
            where = f"{label}: {name!r}[{index}]"
            peer, pair = _parse_entry(entry, where)
            if peer not in models:
                raise ModelGraphError(f"{where}: unknown model {peer!r}")
            _add_pair(graph, name, peer, pair, label)


def _parse_entry(entry: Any, where: str) -> tuple[str, LinkPair]:
    # XOS always writes three strings; a missing or empty dst accessor means "no way back".
    if not isinstance(entry, list | tuple) or len(entry) not in (2, 3):
        raise ModelGraphError(f"{where}: expected {_ENTRY_SHAPE}, got {json.dumps(entry)}")
    peer, src, *rest = entry
    dst = rest[0] if rest else None
    if not (isinstance(peer, str) and peer and isinstance(src, str) and src):
        raise ModelGraphError(f"{where}: expected {_ENTRY_SHAPE}, got {json.dumps(entry)}")
    if dst is not None and not isinstance(dst, str):
        raise ModelGraphError(f"{where}: dst_accessor must be a string, got {json.dumps(dst)}")
    return peer, (src, dst or None)


def _add_links(graph: nx.DiGraph, models: ModelSet) -> None:
    for model in models:
        for link in model.links:
            if link.target not in models:
                continue  # the loader refuses this; a hand-built set just gets no edge
            for source in models.descendants(model.name):
                _add_pair(graph, source, link.target, (link.name, link.reverse_name), LINKS_ORIGIN)


def _check_acyclic(graph: nx.DiGraph) -> None:
    try:
        edges = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    cycle = [u for u, _v in edges]
    # Start at the smallest name so that the message does not depend on insertion order.
    start = cycle.index(min(cycle))
    cycle = cycle[start:] + cycle[:start]
    origins: list[str] = []
    for u, v in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
        for origin in graph.edges[u, v]["origins"]:
            if origin not in origins:
                origins.append(origin)
    path = " -> ".join([*cycle, cycle[0]])
    raise ModelGraphError(f"dependency cycle: {path} (from {' and '.join(origins)})")


def sync_order(graph: nx.DiGraph) -> list[str]:
    """Every model, dependencies before dependents; ties are broken by name."""
    return list(nx.lexicographical_topological_sort(graph.reverse(copy=False), key=str))


def deletion_order(graph: nx.DiGraph) -> list[str]:
    """Every model, dependents before their dependencies; ties are broken by name."""
    return list(nx.lexicographical_topological_sort(graph, key=str))


# --- output -----------------------------------------------------------------------------------


def format_graph(graph: nx.DiGraph, fmt: str = "text") -> str:
    """Render the graph as `text` (one line per model), `dot` (Graphviz) or `json`."""
    if fmt == "text":
        return _format_text(graph)
    if fmt == "dot":
        return _format_dot(graph)
    if fmt == "json":
        return _format_json(graph)
    raise ValueError(f"unknown graph format {fmt!r}; valid formats are: {', '.join(GRAPH_FORMATS)}")


def _pair_text(pair: LinkPair) -> str:
    src, dst = pair
    return f"{src}/{dst}" if dst else src


def _pairs_text(pairs: Iterable[LinkPair]) -> str:
    return ", ".join(_pair_text(p) for p in pairs)


def _format_text(graph: nx.DiGraph) -> str:
    lines = []
    for name in sync_order(graph):
        deps = [
            f"{peer} ({_pairs_text(graph.edges[name, peer]['links'])})"
            for peer in sorted(graph.successors(name))
        ]
        line = f"{name} -> {', '.join(deps)}" if deps else name
        self_links = graph.nodes[name].get("self_links") or []
        if self_links:
            line += f"  [self: {_pairs_text(self_links)}]"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _format_dot(graph: nx.DiGraph) -> str:
    lines = ["digraph models {", "  rankdir=LR;", "  node [shape=box];"]
    for name in sync_order(graph):
        lines.append(f"  {_dot_id(name)};")
    for u, v in sorted(graph.edges):
        label = _pairs_text(graph.edges[u, v]["links"])
        lines.append(f"  {_dot_id(u)} -> {_dot_id(v)} [label={_dot_id(label)}];")
    for name in sorted(graph.nodes):
        self_links = graph.nodes[name].get("self_links") or []
        if self_links:
            label = _pairs_text(self_links)
            lines.append(
                f"  {_dot_id(name)} -> {_dot_id(name)} [label={_dot_id(label)}, style=dashed];"
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _format_json(graph: nx.DiGraph) -> str:
    doc = {
        "models": list(graph.nodes),
        "edges": [
            {"from": u, "to": v, "links": [list(p) for p in graph.edges[u, v]["links"]]}
            for u, v in sorted(graph.edges)
        ],
        "self_links": {
            name: [list(p) for p in graph.nodes[name]["self_links"]]
            for name in graph.nodes
            if graph.nodes[name].get("self_links")
        },
        "order": sync_order(graph),
    }
    return json.dumps(doc, indent=2) + "\n"
