"""The JSON views of the status page that need no running process."""

from __future__ import annotations

import networkx as nx

from xos_runtime.observe.page import graph_view


def test_a_model_sits_one_layer_right_of_the_deepest_model_it_depends_on() -> None:
    graph = nx.DiGraph()
    graph.add_nodes_from(["A", "B", "C", "D", "Lone"])
    # D depends on B and C, C on B, both on A
    graph.add_edges_from([("D", "B"), ("D", "C"), ("B", "A"), ("C", "A"), ("C", "B")])
    view = graph_view(graph)
    assert {m["name"]: m["layer"] for m in view["models"]} == {
        "A": 0,
        "B": 1,
        "C": 2,
        "D": 3,
        "Lone": 0,
    }
    assert view["edges"][0] == {"from": "B", "to": "A"}
    assert len(view["edges"]) == 5
