"""The object DAG of one pass: which pending rows wait for which, from their actual links.

Rows are plain dicts as the store returns them (`leaf_model_name`, `id`, `<link>_id`); rows
that are not pending come from a loader that records what it was asked for, so the tests
also see that the walk through such rows loads each of them once, level by level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from xos_runtime.engines.sync.dag import LinkPlan, dependencies, reverse_edges
from xos_runtime.models import ModelSet, build_model_graph, load_models
from xos_runtime.store import Key

MODELS = """
message Site { required string name = 1; }
message Slice { required string name = 1; required manytoone site->Site:slices = 2; }
message SubSlice (Slice) { optional string extra = 10; }
message Instance {
    required string name = 1;
    required manytoone slice->Slice:instances = 2;
    optional manytoone image->Image:instances = 3;
}
message Image { required string name = 1; }
message Node { required string name = 1; optional manytoone parent->Node:children = 2; }
"""


@pytest.fixture(scope="module")
def models() -> ModelSet:
    return load_models([("dag.xproto", MODELS)])


@pytest.fixture(scope="module")
def plan(models: ModelSet) -> LinkPlan:
    return LinkPlan(models, build_model_graph(models))


class Store:
    """Every row by key; `load` serves the rows that are not pending and records each call."""

    def __init__(self, models: ModelSet):
        self.models = models
        self.rows: dict[Key, dict[str, Any]] = {}
        self.loads: list[set[Key]] = []

    def add(self, leaf: str, oid: int, **links: Any) -> Key:
        key = (self.models.root(leaf), oid)
        self.rows[key] = {"id": oid, "leaf_model_name": leaf, **links}
        return key

    def load(self, keys: Iterable[Key]) -> Mapping[Key, Mapping[str, Any]]:
        wanted = set(keys)
        self.loads.append(wanted)
        return {k: self.rows[k] for k in wanted if k in self.rows}

    def deps(self, plan: LinkPlan, *pending: Key) -> dict[Key, set[Key]]:
        found = dependencies({k: self.rows[k] for k in pending}, plan, self.load)
        for targets in found.values():  # each dependency once, never the row itself
            assert len(set(targets)) == len(targets)
        return {k: set(v) for k, v in found.items()}


@pytest.fixture
def store(models: ModelSet) -> Store:
    return Store(models)


# -- the plan ---------------------------------------------------------------------------------


def test_the_plan_follows_the_links_of_the_model_graph(plan: LinkPlan):
    assert plan.forward["Site"] == []
    assert plan.forward["Slice"] == [("site_id", "Site")]
    assert plan.forward["SubSlice"] == [("site_id", "Site")]  # inherited
    assert plan.forward["Instance"] == [("image_id", "Image"), ("slice_id", "Slice")]
    assert plan.forward["Node"] == [("parent_id", "Node")]  # a self link
    assert plan.columns("Instance") == ["image_id", "slice_id"]
    assert all(not accessors for accessors in plan.reverse.values())


# -- pending rows -----------------------------------------------------------------------------


def test_a_chain_of_pending_rows_depends_link_by_link(plan, store):
    site = store.add("Site", 1)
    slice_ = store.add("Slice", 2, site_id=1)
    instance = store.add("Instance", 3, slice_id=2, image_id=None)
    assert store.deps(plan, site, slice_, instance) == {
        site: set(),
        slice_: {site},
        instance: {slice_},  # not the site too: the order follows from the slice
    }
    assert store.loads == []  # nothing outside the pending rows was needed


def test_a_tree_orders_children_after_their_parent_and_not_after_each_other(plan, store):
    site = store.add("Site", 1)
    a, b = store.add("Slice", 2, site_id=1), store.add("Slice", 3, site_id=1)
    ia = store.add("Instance", 4, slice_id=2, image_id=9)
    ib = store.add("Instance", 5, slice_id=3, image_id=9)
    image = store.add("Image", 9)
    deps = store.deps(plan, site, a, b, ia, ib, image)
    assert deps == {
        site: set(),
        a: {site},
        b: {site},
        ia: {a, image},
        ib: {b, image},
        image: set(),
    }


def test_rows_of_a_sub_model_are_keyed_by_their_root_model(plan, store):
    site = store.add("Site", 1)
    sub = store.add("SubSlice", 2, site_id=1)
    instance = store.add("Instance", 3, slice_id=2)
    assert sub == ("Slice", 2)
    assert store.deps(plan, site, sub, instance) == {site: set(), sub: {site}, instance: {sub}}


def test_link_values_read_as_text_are_ids(plan, store):
    site = store.add("Site", 7)
    slice_ = store.add("Slice", 2, site_id="7")
    assert store.deps(plan, site, slice_)[slice_] == {site}


def test_empty_and_dangling_links_give_no_dependency(plan, store):
    slice_ = store.add("Slice", 2, site_id=None)
    instance = store.add("Instance", 3, slice_id=404)  # no such row anywhere
    assert store.deps(plan, slice_, instance) == {slice_: set(), instance: set()}
    assert store.loads == [{("Slice", 404)}]


def test_a_row_of_a_model_without_a_plan_has_no_dependencies(plan, store):
    unknown = store.add("Site", 5)
    store.rows[unknown]["leaf_model_name"] = "Retired"
    assert store.deps(plan, unknown) == {unknown: set()}


# -- rows that are not pending ----------------------------------------------------------------


def test_a_link_through_a_row_in_sync_still_orders_the_pending_ones(plan, store):
    site = store.add("Site", 1)
    store.add("Slice", 2, site_id=1)  # in sync: not pending
    instance = store.add("Instance", 3, slice_id=2)
    assert store.deps(plan, site, instance) == {site: set(), instance: {site}}
    assert store.loads == [{("Slice", 2)}]


def test_the_walk_loads_each_row_once_level_by_level(plan, store):
    store.add("Site", 1)
    store.add("Slice", 2, site_id=1)
    a = store.add("Instance", 3, slice_id=2)
    b = store.add("Instance", 4, slice_id=2)
    assert store.deps(plan, a, b) == {a: set(), b: set()}  # nothing pending upstream
    assert store.loads == [{("Slice", 2)}, {("Site", 1)}]


# -- self links and cycles --------------------------------------------------------------------


def test_a_self_link_orders_rows_of_one_model(plan, store):
    root = store.add("Node", 1, parent_id=None)
    mid = store.add("Node", 2, parent_id=1)
    leaf = store.add("Node", 3, parent_id=2)
    assert store.deps(plan, root, mid, leaf) == {root: set(), mid: {root}, leaf: {mid}}


def test_a_row_never_depends_on_itself(plan, store):
    selfish = store.add("Node", 4, parent_id=4)
    assert store.deps(plan, selfish) == {selfish: set()}


def test_a_cycle_among_pending_rows_is_kept_for_the_engine_to_report(plan, store):
    a = store.add("Node", 5, parent_id=6)
    b = store.add("Node", 6, parent_id=5)
    assert store.deps(plan, a, b) == {a: {b}, b: {a}}


def test_a_cycle_among_rows_that_are_not_pending_ends_the_walk(plan, store):
    pending = store.add("Node", 7, parent_id=8)
    store.add("Node", 8, parent_id=9)
    store.add("Node", 9, parent_id=8)
    assert store.deps(plan, pending) == {pending: set()}
    assert store.loads == [{("Node", 8)}, {("Node", 9)}]  # each loaded once


def test_a_walk_back_to_the_row_itself_is_no_dependency(plan, store):
    pending = store.add("Node", 10, parent_id=11)
    store.add("Node", 11, parent_id=10)
    other = store.add("Node", 12, parent_id=11)
    assert store.deps(plan, pending, other) == {pending: set(), other: {pending}}


# -- deletion order ---------------------------------------------------------------------------


def test_deletion_reverses_every_edge(plan, store):
    site = store.add("Site", 1)
    a, b = store.add("Slice", 2, site_id=1), store.add("Slice", 3, site_id=1)
    instance = store.add("Instance", 4, slice_id=2)
    deps = store.deps(plan, site, a, b, instance)
    assert reverse_edges(deps) == {
        site: {a, b},  # deleted after both slices
        a: {instance},
        b: set(),
        instance: set(),
    }


def test_reversing_twice_gives_the_dependencies_back(plan, store):
    nodes = [store.add("Node", i, parent_id=i // 2 or None) for i in range(1, 16)]
    deps = store.deps(plan, *nodes)
    assert sum(map(len, deps.values())) == 14  # a binary tree of 15 nodes
    assert reverse_edges(reverse_edges(deps)) == deps


# -- reverse accessors (model-deps files) -----------------------------------------------------


def test_a_reverse_accessor_waits_for_the_pending_rows_that_link_back(models, store):
    # XOS model-deps style: a Site depends on its slices (`Site.slices`), links not used
    plan = LinkPlan(
        models,
        build_model_graph(models, deps={"Site": [["Slice", "slices", "site"]]}, use_links=False),
    )
    assert plan.reverse["Site"] == [("site_id", "Slice", frozenset({"Slice", "SubSlice"}))]
    assert plan.forward["Slice"] == []  # the slice itself does not depend on its site here
    # the engines keep only these columns of a pending row: the slices' link back is one
    assert plan.columns("Slice") == plan.columns("SubSlice") == ["site_id"]
    assert plan.columns("Site") == []
    site, other = store.add("Site", 1), store.add("Site", 5)
    a = store.add("Slice", 2, site_id=1)
    b = store.add("SubSlice", 3, site_id=1)
    c = store.add("Slice", 4, site_id=5)
    store.add("Slice", 6, site_id=1)  # not pending: nothing to wait for
    assert store.deps(plan, site, other, a, b, c) == {
        site: {a, b},
        other: {c},
        a: set(),
        b: set(),
        c: set(),
    }
    assert store.loads == []


def test_a_reverse_accessor_answers_for_a_row_the_walk_goes_through(models, store):
    graph = build_model_graph(
        models,
        deps={"SubSlice": [["Site", "site", "slices"]], "Site": [["Slice", "slices", "site"]]},
        use_links=False,
    )
    plan = LinkPlan(models, graph)
    store.add("Site", 1)  # in sync; its pending slices are found through it
    sub = store.add("SubSlice", 3, site_id=1)
    sibling = store.add("Slice", 2, site_id=1)
    assert store.deps(plan, sub, sibling) == {sub: {sibling}, sibling: set()}
    assert store.loads == [{("Site", 1)}]
