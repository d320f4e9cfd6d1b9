"""The model dependency graph: sources, cycles, order and output formats."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from xos_runtime.exceptions import ModelGraphError
from xos_runtime.models import (
    LINKS_ORIGIN,
    ModelSet,
    build_model_graph,
    deletion_order,
    format_graph,
    load_models,
    sync_order,
)

DATA = Path(__file__).parent / "data"


def models_of(text: str) -> ModelSet:
    return load_models([("t.xproto", text)])


@pytest.fixture(scope="module")
def core() -> ModelSet:
    return load_models([DATA], on_warning=lambda _: None)


def edges(graph: nx.DiGraph) -> dict[tuple[str, str], list[tuple[str, str | None]]]:
    return {(u, v): list(d["links"]) for u, v, d in graph.edges(data=True)}


def write_deps(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "deps.json"
    path.write_text(json.dumps(doc))
    return path


# --- sources --------------------------------------------------------------------------------


def test_edges_from_links(core: ModelSet) -> None:
    graph = build_model_graph(core)
    assert list(graph.nodes) == ["Site", "User", "Slice", "Service", "ComputeSlice"]
    assert edges(graph) == {
        ("User", "Site"): [("site", "users")],
        ("Slice", "Site"): [("site", "slices")],
        ("Slice", "User"): [("creator", "created_slices")],
        ("Slice", "Service"): [("service", None)],
        # inherited links give edges from the sub-model too
        ("ComputeSlice", "Site"): [("site", "slices")],
        ("ComputeSlice", "User"): [("creator", "created_slices")],
        ("ComputeSlice", "Service"): [("service", None)],
    }
    assert graph.edges["User", "Site"]["origins"] == [LINKS_ORIGIN]


def test_edges_from_file_only(core: ModelSet) -> None:
    graph = build_model_graph(core, deps_file=DATA / "deps.json", use_links=False)
    assert edges(graph) == {
        ("User", "Site"): [("site", "users")],
        ("Slice", "Site"): [("site", "slices")],
        ("Slice", "User"): [("creator", "created_slices")],
    }
    assert graph.edges["User", "Site"]["origins"] == [str(DATA / "deps.json")]
    assert set(graph.nodes) == set(core.names())  # models without edges are still nodes


def test_file_and_links_combine(core: ModelSet) -> None:
    deps = {"Service": [["Site", "site", "services"]], "User": [["Site", "site", "users"]]}
    graph = build_model_graph(core, deps=deps)
    assert graph.edges["Service", "Site"]["links"] == [("site", "services")]
    assert graph.edges["Service", "Site"]["origins"] == ["<deps>"]
    # one pair from both sources is kept once
    assert graph.edges["User", "Site"]["links"] == [("site", "users")]
    assert graph.edges["User", "Site"]["origins"] == ["<deps>", LINKS_ORIGIN]


def test_no_sources_gives_nodes_only(core: ModelSet) -> None:
    graph = build_model_graph(core, use_links=False)
    assert graph.number_of_edges() == 0
    assert graph.number_of_nodes() == len(core)


def test_every_pair_of_a_model_pair_is_kept() -> None:
    models = models_of(
        "message Service {}\n"
        "message Dep { required manytoone provider->Service:provided = 1;\n"
        "              required manytoone subscriber->Service:subscribed = 2; }"
    )
    deps = {"Dep": [["Service", "owner", "owned"], ["Service", "provider", "provided"]]}
    graph = build_model_graph(models, deps=deps)
    assert graph.edges["Dep", "Service"]["links"] == [
        ("owner", "owned"),
        ("provider", "provided"),
        ("subscriber", "subscribed"),
    ]


def test_self_links_are_kept_on_the_node() -> None:
    models = models_of(
        "message Base { optional manytoone master->Base:children = 1; }\nmessage Sub (Base) {}"
    )
    graph = build_model_graph(models, deps={"Base": [["Base", "other", ""]]})
    assert not graph.has_edge("Base", "Base")
    assert graph.nodes["Base"]["self_links"] == [("other", None), ("master", "children")]
    # a sub-model inherits the link, which targets its parent: a real edge
    assert edges(graph) == {("Sub", "Base"): [("master", "children")]}
    assert graph.nodes["Sub"]["self_links"] == []


def test_deps_file_entries_are_not_inherited() -> None:
    models = models_of("message Site {}\nmessage Base {}\nmessage Sub (Base) {}")
    graph = build_model_graph(models, deps={"Base": [["Site", "site", "bases"]]})
    assert edges(graph) == {("Base", "Site"): [("site", "bases")]}


def test_entry_without_dst_accessor() -> None:
    models = models_of("message A {}\nmessage B {}")
    graph = build_model_graph(models, deps={"A": [["B", "b"]]})
    assert graph.edges["A", "B"]["links"] == [("b", None)]


# --- cycles ---------------------------------------------------------------------------------


def test_two_model_cycle_from_file_and_links(tmp_path: Path) -> None:
    models = models_of("message A { optional manytoone b->B = 1; }\nmessage B {}")
    path = write_deps(tmp_path, {"B": [["A", "a", "bs"]]})
    with pytest.raises(ModelGraphError) as info:
        build_model_graph(models, deps_file=path)
    assert str(info.value) == f"dependency cycle: A -> B -> A (from {LINKS_ORIGIN} and {path})"


def test_three_model_cycle_starts_at_the_smallest_name() -> None:
    models = models_of(
        "message C { optional manytoone a->A = 1; }\n"
        "message B { optional manytoone c->C = 1; }\n"
        "message A { optional manytoone b->B = 1; }"
    )
    with pytest.raises(ModelGraphError) as info:
        build_model_graph(models)
    assert str(info.value) == f"dependency cycle: A -> B -> C -> A (from {LINKS_ORIGIN})"


def test_cycle_ignored_when_links_are_not_used() -> None:
    models = models_of("message A { optional manytoone b->B = 1; }\nmessage B {}")
    graph = build_model_graph(models, deps={"B": [["A", "a", "bs"]]}, use_links=False)
    assert sync_order(graph) == ["A", "B"]


# --- bad model-deps files -------------------------------------------------------------------


def graph_error(tmp_path: Path, core: ModelSet, doc: Any) -> str:
    path = write_deps(tmp_path, doc)
    with pytest.raises(ModelGraphError) as info:
        build_model_graph(core, deps_file=path)
    return str(info.value).replace(str(path), "FILE")


def test_missing_file(core: ModelSet, tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ModelGraphError, match=r"nope\.json: cannot read model-deps file"):
        build_model_graph(core, deps_file=path)


def test_invalid_json(core: ModelSet, tmp_path: Path) -> None:
    path = tmp_path / "deps.json"
    path.write_text('{\n  "User": [["Site", "site"]],,\n}')
    with pytest.raises(ModelGraphError) as info:
        build_model_graph(core, deps_file=path)
    assert str(info.value).startswith(f"{path}:2:30: invalid JSON: ")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "FILE: expected a JSON object mapping model names to lists of"),
        ({"Nope": []}, "FILE: 'Nope': unknown model 'Nope'"),
        ({"User": {"Site": 1}}, "FILE: 'User': expected a list of"),
        ({"User": [["Sitee", "site", "users"]]}, "FILE: 'User'[0]: unknown model 'Sitee'"),
        ({"User": [["Site", "site", "users"], "Site"]}, "FILE: 'User'[1]: expected ["),
        ({"User": [["Site"]]}, "FILE: 'User'[0]: expected ["),
        ({"User": [["Site", "", "users"]]}, "FILE: 'User'[0]: expected ["),
        ({"User": [["Site", "a", "b", "c"]]}, "FILE: 'User'[0]: expected ["),
        ({"User": [["Site", "site", 3]]}, "FILE: 'User'[0]: dst_accessor must be a string"),
    ],
)
def test_malformed_deps(core: ModelSet, tmp_path: Path, doc: Any, message: str) -> None:
    assert graph_error(tmp_path, core, doc).startswith(message)


def test_malformed_mapping_is_named(core: ModelSet) -> None:
    with pytest.raises(ModelGraphError, match=r"^<deps>: 'Ghost': unknown model 'Ghost'$"):
        build_model_graph(core, deps={"Ghost": []})


# --- order ----------------------------------------------------------------------------------


def test_sync_order_puts_dependencies_first(core: ModelSet) -> None:
    order = sync_order(build_model_graph(core))
    assert order == ["Service", "Site", "User", "ComputeSlice", "Slice"]
    assert deletion_order(build_model_graph(core)) == [
        "ComputeSlice",
        "Slice",
        "Service",
        "User",
        "Site",
    ]


def test_ties_are_broken_by_name() -> None:
    models = models_of("message Zed {}\nmessage Alpha {}\nmessage Mid {}")
    assert sync_order(build_model_graph(models)) == ["Alpha", "Mid", "Zed"]


def test_orders_respect_every_edge(core: ModelSet) -> None:
    graph = build_model_graph(core)
    sync = sync_order(graph)
    delete = deletion_order(graph)
    for u, v in graph.edges:
        assert sync.index(v) < sync.index(u)
        assert delete.index(u) < delete.index(v)


# --- output ---------------------------------------------------------------------------------


def test_text_format(core: ModelSet) -> None:
    assert format_graph(build_model_graph(core), "text") == (
        "Service\n"
        "Site\n"
        "User -> Site (site/users)\n"
        "ComputeSlice -> Service (service), Site (site/slices), User (creator/created_slices)\n"
        "Slice -> Service (service), Site (site/slices), User (creator/created_slices)\n"
    )


def test_text_format_shows_self_links() -> None:
    models = models_of("message A { optional manytoone parent->A:children = 1; }")
    assert format_graph(build_model_graph(models)) == "A  [self: parent/children]\n"


def test_dot_format_is_well_formed(core: ModelSet) -> None:
    graph = build_model_graph(core, deps={"Service": [["Site", 'we"ird', "back\\slash"]]})
    dot = format_graph(graph, "dot")
    lines = dot.strip().split("\n")
    assert lines[0] == "digraph models {"
    assert lines[-1] == "}"
    quoted = r'"(?:[^"\\]|\\.)*"'
    node = re.compile(rf"^  {quoted};$")
    edge = re.compile(rf"^  {quoted} -> {quoted} \[label={quoted}(, style=dashed)?\];$")
    body = lines[3:-1]
    assert all(node.match(x) or edge.match(x) for x in body), body
    assert sum(1 for x in body if edge.match(x)) == graph.number_of_edges()
    assert '  "Service" -> "Site" [label="we\\"ird/back\\\\slash"];' in lines
    assert '  "User" -> "Site" [label="site/users"];' in lines


def test_json_format(core: ModelSet) -> None:
    graph = build_model_graph(core)
    doc = json.loads(format_graph(graph, "json"))
    assert doc["models"] == core.names()
    assert doc["order"] == sync_order(graph)
    assert {"from": "User", "to": "Site", "links": [["site", "users"]]} in doc["edges"]
    assert {"from": "Slice", "to": "Service", "links": [["service", None]]} in doc["edges"]
    assert len(doc["edges"]) == graph.number_of_edges()
    assert doc["self_links"] == {}


def test_unknown_format(core: ModelSet) -> None:
    with pytest.raises(ValueError, match="unknown graph format 'svg'; valid formats are: text"):
        format_graph(build_model_graph(core), "svg")
