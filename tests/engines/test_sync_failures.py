"""Outcomes of each exception kind, backoff, holding back dependents, timeouts, races."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from xos_runtime.host import Runtime


def register(obj: Any) -> dict:
    return json.loads(type(obj).objects.get(id=obj.id).backend_register)


def fresh(obj: Any) -> Any:
    return type(obj).objects.get(id=obj.id)


def sync_pass(rt: Runtime, exclude=()):
    return rt.engines()[0].run_pass(exclude=exclude)


@pytest.mark.parametrize(
    ("behaviour", "code", "status", "exponent"),
    [
        ("fail", 2, "boom s", 1),
        ("defer", 0, "not yet: s", 0),
        ("innocuous", 1, "harmless: s", 1),
        ("permanent", 2, "never: s", 1),
    ],
)
def test_exception_kinds(make_runtime, engine_steps, clock, behaviour, code, status, exponent):
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour=behaviour)
    report = sync_pass(rt)
    assert report.failed == {("Site", site.id)}
    row = fresh(site)
    assert (row.backend_code, row.backend_status) == (code, status)
    assert row.enacted is None
    reg = register(site)
    assert reg["failures"] == 1 and reg["exponent"] == exponent
    assert reg["next_run"] > clock.now and reg["last_failure"] == clock.now
    assert reg.get("permanent", False) is (behaviour == "permanent")


def test_backoff_is_honoured_and_grows_exponentially(make_runtime, engine_steps, clock):
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="fail")
    delays = []
    for _ in range(4):
        report = sync_pass(rt)
        assert report.attempted == 1
        reg = register(site)
        delays.append(reg["next_run"] - clock.now)
        # not ready again until next_run: a pass now attempts nothing
        again = sync_pass(rt)
        assert again.attempted == 0 and again.waiting == 1
        assert again.next_run == pytest.approx(reg["next_run"])
        clock.advance(delays[-1] - 0.01)
        assert sync_pass(rt).attempted == 0
        clock.advance(0.01)
    assert delays == pytest.approx([1, 2, 4, 8])
    assert register(site)["failures"] == 4


def test_deferred_waits_its_delay_without_growing(make_runtime, engine_steps, clock):
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="defer:30")
    sync_pass(rt)
    reg = register(site)
    assert reg["next_run"] == pytest.approx(clock.now + 30) and reg["exponent"] == 0
    clock.advance(29)
    assert sync_pass(rt).attempted == 0
    clock.advance(1)
    assert sync_pass(rt).attempted == 1
    assert register(site)["exponent"] == 0 and fresh(site).backend_code == 0


def test_permanent_failure_waits_for_a_change(make_runtime, engine_steps, clock):
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="permanent")
    sync_pass(rt)
    clock.advance(10_000)
    assert sync_pass(rt).attempted == 0
    obj = fresh(site)
    obj.behaviour = ""
    obj.save()
    report = sync_pass(rt)
    assert report.succeeded == 1 and fresh(site).backend_code == 1


def test_a_user_change_makes_a_backing_off_object_ready_at_once(make_runtime, engine_steps, clock):
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="fail")
    sync_pass(rt)
    sync_pass(rt)
    clock.advance(3)
    sync_pass(rt)
    assert register(site)["failures"] == 2
    obj = fresh(site)
    obj.behaviour = ""  # the operator fixes the cause
    obj.save()
    report = sync_pass(rt)  # no waiting out the backoff
    assert report.succeeded == 1
    reg = register(site)
    assert reg["failures"] == 0 and reg["exponent"] == 0 and reg["next_run"] == 0
    assert fresh(site).backend_status == "OK"


def test_only_dependents_are_held_back(make_runtime, engine_steps):
    rt = make_runtime()
    acc = rt.accessor
    bad = acc.Site.objects.create(name="bad", behaviour="fail")
    bad_slice = acc.Slice.objects.create(name="bad-slice", site=bad)
    bad_inst = acc.Instance.objects.create(name="bad-inst", slice=bad_slice)
    good = acc.Site.objects.create(name="good")
    good_slice = acc.Slice.objects.create(name="good-slice", site=good)
    report = sync_pass(rt)
    assert report.blocked == {("Slice", bad_slice.id), ("Instance", bad_inst.id)}
    names = {c["name"] for c in engine_steps.CALLS}
    assert names == {"bad", "good", "good-slice"}
    text = f"Failed due to error in model Site id {bad.id}: boom bad"
    for obj in (bad_slice, bad_inst):
        row = fresh(obj)
        assert row.backend_status == text and row.backend_code == 2
        assert register(obj) == {}  # no backoff of its own
    assert fresh(good_slice).backend_code == 1


def test_dependent_released_once_its_dependency_heals(make_runtime, engine_steps, clock):
    rt = make_runtime()
    acc = rt.accessor
    site = acc.Site.objects.create(name="flaky", behaviour="fail-once")
    sl = acc.Slice.objects.create(name="sl", site=site)
    sync_pass(rt)
    assert fresh(sl).backend_status.startswith("Failed due to error in model Site")
    assert sync_pass(rt).attempted == 0  # site backing off, slice held back
    clock.advance(1)
    report = sync_pass(rt)
    assert report.succeeded == 2
    assert fresh(site).backend_code == 1 and fresh(sl).backend_code == 1
    assert fresh(sl).backend_status == "OK"


def test_edit_during_sync_leaves_the_object_pending(make_runtime, engine_steps, clock):
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="hang")
    done = threading.Event()
    t = threading.Thread(target=lambda: (sync_pass(rt), done.set()))
    t.start()
    assert engine_steps.STARTED.wait(10)
    clock.advance(1)
    edited = fresh(site)
    edited.name = "edited while syncing"
    edited.save()
    engine_steps.RELEASE.set()
    assert done.wait(10)
    row = fresh(site)
    assert row.backend_code == 1 and row.enacted < row.updated
    assert [o.id for o in rt.accessor.fetch_pending(["Site"])] == [site.id]


def test_timeout_fails_the_call_and_blocks_nothing_else(make_runtime, engine_steps):
    rt = make_runtime(sync={"timeout": 0.3, "workers": 2})
    acc = rt.accessor
    hung = acc.Site.objects.create(name="hung", behaviour="hang")
    held = acc.Slice.objects.create(name="held", site=hung)
    others = [acc.Site.objects.create(name=f"ok{i}") for i in range(5)]
    started = time.monotonic()
    report = sync_pass(rt)
    assert time.monotonic() - started < 5
    row = fresh(hung)
    assert row.backend_code == 2 and row.backend_status == (
        "sync_record timed out after 0.3s; the call has not returned yet"
    )
    assert report.outcomes["timeout"] == 1
    assert fresh(held).backend_status.startswith(f"Failed due to error in model Site id {hung.id}")
    assert all(fresh(o).backend_code == 1 for o in others)
    # the pool kept its size: beside the abandoned call, two new calls still run at once
    for i in range(4):
        acc.Node.objects.create(name=f"n{i}", behaviour="sleep:50")
    sync_pass(rt, exclude={("Site", hung.id)})
    assert engine_steps.MAX_RUNNING[0] == 3


def _wait(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize("claims", [False, True])
def test_a_timed_out_object_does_not_start_again_while_its_call_runs(
    make_runtime, engine_steps, clock, claims
):
    rt = make_runtime(sync={"timeout": 0.2, "workers": 2, "claims": claims})
    hung = rt.accessor.Site.objects.create(name="hung", behaviour="hang")
    assert sync_pass(rt).outcomes["timeout"] == 1
    for _ in range(3):  # backoff over, change by the user: still not while the call runs
        clock.advance(3600)
        hung = fresh(hung)
        hung.name = hung.name + "!"
        hung.save()
        report = sync_pass(rt)
        assert report.attempted == 0 and report.waiting == 1
    assert len([c for c in engine_steps.CALLS if c["name"].startswith("hung")]) == 0
    assert fresh(hung).backend_status.endswith("; the call has not returned yet")
    engine_steps.RELEASE.set()  # the call returns: the object may run again
    _wait(lambda: len(engine_steps.CALLS) == 1)
    engine_steps.RELEASE.clear()
    hung = fresh(hung)
    hung.behaviour = ""
    hung.save()
    assert sync_pass(rt).succeeded == 1
    assert fresh(hung).backend_status == "OK"


def test_abandoned_calls_are_bounded_and_new_calls_wait(make_runtime, engine_steps):
    rt = make_runtime(sync={"timeout": 0.2, "workers": 2, "max_abandoned": 1})
    for i in range(3):
        rt.accessor.Site.objects.create(name=f"hung{i}", behaviour="hang")
    engine = rt.engines()[0]
    report = engine.run_pass()
    # two calls hang and time out; one replacement worker (the bound) takes the third,
    # which hangs too: no worker is left, and no thread beyond workers + max_abandoned
    assert report.outcomes["timeout"] == 3
    assert engine.pool.threads == 3 and engine.pool.workers == 0
    ok = rt.accessor.Site.objects.create(name="ok")
    engine_steps.RELEASE.set()  # the hung calls return; their threads work again
    _wait(lambda: engine.pool.workers == 2)
    assert engine.pool.threads == 2
    assert engine.run_pass().succeeded == 1
    assert fresh(ok).backend_code == 1


def test_failing_delete_keeps_the_row_and_backs_off(make_runtime, engine_steps, clock):
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="fail-delete")
    sync_pass(rt)
    fresh(site).delete()
    report = sync_pass(rt)
    assert report.failed == {("Site", site.id)}
    row = rt.accessor.Site.deleted_objects.get(id=site.id)
    assert row.backend_status == "cannot delete s" and row.backend_code == 2
    assert sync_pass(rt).attempted == 0  # backing off
    clock.advance(1)
    assert sync_pass(rt).attempted == 1


def test_outcome_hook_sees_every_unit(make_runtime, engine_steps):
    rt = make_runtime()
    seen: list[tuple[str, str]] = []

    class Observer:
        @staticmethod
        def xos_runtime_sync_outcome(step, obj, outcome):
            seen.append((obj.name, outcome.kind))

    from xos_runtime import hookimpl

    Observer.xos_runtime_sync_outcome = hookimpl(Observer.xos_runtime_sync_outcome)
    rt.plugins.plugin_manager.register(Observer(), name="observer")
    acc = rt.accessor
    bad = acc.Site.objects.create(name="bad", behaviour="fail")
    acc.Slice.objects.create(name="child", site=bad)
    acc.Site.objects.create(name="good")
    sync_pass(rt)
    assert sorted(seen) == [("bad", "error"), ("child", "blocked"), ("good", "success")]


def test_a_broken_fetch_pending_does_not_stop_other_steps(make_runtime, engine_steps):
    rt = make_runtime()
    engine_steps.BROKEN_FETCH.add("Node")
    rt.accessor.Node.objects.create(name="n")
    site = rt.accessor.Site.objects.create(name="s")
    report = sync_pass(rt)
    assert report.succeeded == 1 and fresh(site).backend_code == 1
    engine_steps.BROKEN_FETCH.clear()
    assert sync_pass(rt).succeeded == 1  # the node, once its step can fetch again


def test_stop_during_a_pass_leaves_unstarted_objects_pending(make_runtime, engine_steps):
    rt = make_runtime()
    acc = rt.accessor
    site = acc.Site.objects.create(name="s", behaviour="hang")
    sl = acc.Slice.objects.create(name="sl", site=site)
    eng = rt.engines()[0]
    done = threading.Event()
    t = threading.Thread(target=lambda: (eng.run_pass(), done.set()))
    t.start()
    assert engine_steps.STARTED.wait(10)
    eng.stop()  # no new work from now on; the running call may finish
    engine_steps.RELEASE.set()
    assert done.wait(10)
    assert fresh(site).backend_code == 1  # the running call finished and was recorded
    row = fresh(sl)
    assert row.backend_code == 0 and row.backend_status == "Provisioning in progress"
    assert [o.id for o in acc.fetch_pending(["Slice"])] == [sl.id]


@pytest.mark.parametrize("behaviour", ["permanent", "fail"])
def test_deleting_a_failed_object_deletes_it_at_once(make_runtime, engine_steps, behaviour):
    rt = make_runtime(sync={"backoff": {"initial": 100, "jitter": 0}})
    site = rt.accessor.Site.objects.create(name="s", behaviour=behaviour)
    assert sync_pass(rt).failed == {("Site", site.id)}
    fresh(site).delete()  # a change: no waiting out the backoff, permanent or not
    report = sync_pass(rt)
    assert report.succeeded == 1
    assert [c["phase"] for c in engine_steps.CALLS] == ["sync", "delete"]
    assert rt.accessor.Site.deleted_objects.count() == 0


def test_a_raising_outcome_hook_does_not_lose_outcomes(make_runtime, engine_steps):
    from xos_runtime import hookimpl

    class Broken:
        @hookimpl
        def xos_runtime_sync_outcome(self, step, obj, outcome):
            raise ValueError("observer bug")

    rt = make_runtime()
    rt.plugins.plugin_manager.register(Broken(), name="broken-observer")
    sites = [rt.accessor.Site.objects.create(name=f"s{i}") for i in range(3)]
    report = sync_pass(rt)
    assert report.succeeded == 3
    assert all(fresh(s).enacted is not None and fresh(s).backend_code == 1 for s in sites)
    assert sync_pass(rt).attempted == 0


def test_a_deferral_after_errors_does_not_grow_the_backoff(make_runtime, engine_steps, clock):
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="fail")
    for _ in range(3):  # 1, 2, 4 s of backoff
        sync_pass(rt)
        clock.advance(register(site)["next_run"] - clock.now)
    obj = fresh(site)
    obj.behaviour = "defer"
    obj.save()
    sync_pass(rt)
    reg = register(site)
    assert fresh(site).backend_code == 0
    assert reg["next_run"] - clock.now == pytest.approx(1)  # the first step, not 8 s
    assert reg["exponent"] == 3
