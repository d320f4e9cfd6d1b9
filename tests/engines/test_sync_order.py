"""Dependency order in both phases, concurrency, deletion and purge."""

from __future__ import annotations

import itertools
import json
from typing import Any

from xos_runtime.host import Runtime


def calls(steps: Any, phase: str = "sync") -> dict[str, dict]:
    return {c["name"]: c for c in steps.CALLS if c["phase"] == phase}


def before(a: dict, b: dict) -> bool:
    """`a` finished before `b` started."""
    return a["end"] <= b["start"]


def chain(rt: Runtime, prefix: str = "", behaviour: str = "") -> tuple[Any, Any, Any]:
    acc = rt.accessor
    site = acc.Site.objects.create(name=f"{prefix}site", behaviour=behaviour)
    sl = acc.Slice.objects.create(name=f"{prefix}slice", site=site)
    inst = acc.Instance.objects.create(name=f"{prefix}inst", slice=sl)
    return site, sl, inst


def test_chain_syncs_dependencies_first_and_deletes_dependents_first(make_runtime, engine_steps):
    rt = make_runtime()
    site, sl, inst = chain(rt, behaviour="sleep:20")
    report = rt.engines()[0].run_pass()
    assert report.succeeded == 3 and not report.failed
    c = calls(engine_steps)
    assert before(c["site"], c["slice"]) and before(c["slice"], c["inst"])
    for obj in (site, sl, inst):
        fresh = type(obj).objects.get(id=obj.id)
        assert fresh.backend_code == 1 and fresh.backend_status == "OK"
        assert fresh.enacted == fresh.updated
        register = json.loads(fresh.backend_register)
        assert register["failures"] == 0 and register["next_run"] == 0
        assert register["last_success"] > 0
    assert rt.accessor.fetch_pending(["Site", "Slice", "Instance"]) == []

    engine_steps.reset()
    rt.accessor.Site.objects.get(id=site.id).delete()  # cascades to slice and instance
    report = rt.engines()[0].run_pass()
    d = calls(engine_steps, "delete")
    assert set(d) == {"site", "slice", "inst"}
    assert before(d["inst"], d["slice"]) and before(d["slice"], d["site"])
    for model in ("Site", "Slice", "Instance"):
        cls = rt.accessor.get_model_class(model)
        assert cls.objects.count() == 0 and cls.deleted_objects.count() == 0  # purged


def test_tree_and_diamond_within_one_model(make_runtime, engine_steps):
    rt = make_runtime()
    Node = rt.accessor.Node
    root = Node.objects.create(name="root", behaviour="sleep:10")
    left = Node.objects.create(name="left", parent=root, behaviour="sleep:10")
    right = Node.objects.create(name="right", parent=root, behaviour="sleep:10")
    leaves = [
        Node.objects.create(name=f"leaf{i}", parent=p)
        for i, p in enumerate([left, left, right, right])
    ]
    diamond = Node.objects.create(name="diamond", parent=left, other=right)
    rt.engines()[0].run_pass()
    c = calls(engine_steps)
    assert len(c) == 4 + 3 + 1
    assert before(c["root"], c["left"]) and before(c["root"], c["right"])
    for i, leaf in enumerate(leaves):
        parent = "left" if i < 2 else "right"
        assert before(c[parent], c[leaf.name])
    assert before(c["left"], c["diamond"]) and before(c["right"], c["diamond"])
    # deletion: dependents first
    engine_steps.reset()
    for node in (*leaves, diamond, left, right, root):
        Node.objects.get(id=node.id).delete()
    rt.engines()[0].run_pass()
    d = calls(engine_steps, "delete")
    assert before(d["diamond"], d["left"]) and before(d["diamond"], d["right"])
    assert before(d["left"], d["root"]) and before(d["leaf0"], d["left"])
    assert Node.deleted_objects.count() == 0


def test_dependency_through_an_object_that_is_not_pending(make_runtime, engine_steps):
    rt = make_runtime()
    site, sl, _ = chain(rt)
    rt.engines()[0].run_pass()
    engine_steps.reset()
    site = rt.accessor.Site.objects.get(id=site.id)
    site.behaviour = "sleep:30"
    site.save()
    inst = rt.accessor.Instance.objects.create(name="late", slice=sl)
    rt.engines()[0].run_pass()
    c = calls(engine_steps)
    assert set(c) == {"site", "late"}  # the slice is in sync: not synced again
    assert before(c["site"], c["late"])  # but the instance still waits for its site
    assert inst.id is not None


def test_independent_objects_run_concurrently_bounded_by_the_pool(make_runtime, engine_steps):
    rt = make_runtime(sync={"workers": 3})
    for i in range(9):
        rt.accessor.Site.objects.create(name=f"s{i}", behaviour="sleep:60")
    report = rt.engines()[0].run_pass()
    assert report.succeeded == 9
    assert engine_steps.MAX_RUNNING[0] == 3


def test_per_step_concurrency(make_runtime, engine_steps, monkeypatch):
    monkeypatch.setattr(engine_steps.SyncSite, "concurrency", 1)
    rt = make_runtime(sync={"workers": 4})
    for i in range(3):
        rt.accessor.Site.objects.create(name=f"s{i}", behaviour="sleep:30")
    for i in range(3):
        rt.accessor.Node.objects.create(name=f"n{i}", behaviour="sleep:30")
    rt.engines()[0].run_pass()
    sites = sorted(
        (c for c in engine_steps.CALLS if c["model"] == "Site"), key=lambda c: c["start"]
    )
    assert all(before(a, b) for a, b in itertools.pairwise(sites))
    assert engine_steps.MAX_RUNNING[0] >= 2  # nodes ran beside the sites


def test_a_step_change_does_not_resync_the_object(make_runtime, engine_steps):
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="edit")
    rt.engines()[0].run_pass()
    fresh = rt.accessor.Site.objects.get(id=site.id)
    assert fresh.name == "s+" and fresh.changed_by_step is not None
    assert rt.accessor.fetch_pending(["Site"]) == []
    assert rt.accessor.fetch_policy_pending(["Site"])  # but policies would see it


def test_the_engine_on_postgresql(make_runtime, engine_steps, pg_store_url):
    rt = make_runtime(store_url=pg_store_url)
    site, _, _ = chain(rt, behaviour="sleep:10")
    bad = rt.accessor.Site.objects.create(name="bad", behaviour="fail")
    held = rt.accessor.Slice.objects.create(name="held", site=bad)
    report = rt.engines()[0].run_pass()
    assert report.succeeded == 3 and report.failed == {("Site", bad.id)}
    c = calls(engine_steps)
    assert before(c["site"], c["slice"]) and before(c["slice"], c["inst"])
    assert rt.accessor.Slice.objects.get(id=held.id).backend_status.startswith(
        f"Failed due to error in model Site id {bad.id}: boom bad"
    )
    rt.accessor.Site.objects.get(id=site.id).delete()
    rt.engines()[0].run_pass()
    assert rt.accessor.Instance.deleted_objects.count() == 0
    assert rt.accessor.Instance.objects.count() == 0


def test_concurrency_of_any_step_of_an_object_is_respected(make_runtime, engine_steps, tmp_path):
    steps_dir = tmp_path / "steps"
    steps_dir.mkdir()
    (steps_dir / "audit.py").write_text(
        "from xos_runtime import SyncStep\n\n"
        "class AuditSite(SyncStep):\n"
        "    observes = 'Site'\n"
        "    concurrency = 1\n"
    )
    rt = make_runtime(steps_dir=str(steps_dir), sync={"workers": 4})
    for i in range(4):
        rt.accessor.Site.objects.create(name=f"s{i}", behaviour="sleep:30")
    assert rt.engines()[0].run_pass().succeeded == 4
    assert engine_steps.MAX_RUNNING[0] == 1  # AuditSite's limit holds the whole object
