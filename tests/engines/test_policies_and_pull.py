"""The policy engine and the pull engine over real plugin distributions."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from xos_runtime import hookimpl
from xos_runtime.host import Runtime


def engine(rt: Runtime, name: str) -> Any:
    return {e.name: e for e in rt.engines()}[name]


def fresh(obj: Any) -> Any:
    return type(obj).objects.get(id=obj.id)


def test_engines_run_in_pass_order(make_runtime, policies) -> None:
    rt = make_runtime()
    assert [e.name for e in rt.engines()] == ["pull", "policies", "sync"]


def test_create_then_update_then_nothing(make_runtime, policies) -> None:
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s")
    report = engine(rt, "policies").run_pass()
    assert report.succeeded == 1
    assert [
        ("SitePolicy", "create", "Site", site.id, "s"),
        ("SitePolicy", "after", "Site", site.id, "s"),
    ] == policies.CALLS
    row = fresh(site)
    assert (row.policy_code, row.policy_status) == (1, "done") and row.policed == row.updated
    assert engine(rt, "policies").run_pass().attempted == 0
    policies.reset()
    row.name = "renamed"
    row.save()
    engine(rt, "policies").run_pass()
    assert policies.CALLS[0] == ("SitePolicy", "update", "Site", site.id, "renamed")


def test_a_sync_step_change_retriggers_policies(make_runtime, policies) -> None:
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="edit")
    engine(rt, "policies").run_pass()
    policies.reset()
    engine(rt, "sync").run_pass()  # the step renames the site: changed_by_step
    engine(rt, "policies").run_pass()
    assert policies.CALLS[0] == ("SitePolicy", "update", "Site", site.id, "s+")
    assert engine(rt, "sync").run_pass().attempted == 0


def test_a_policy_change_retriggers_sync_not_policies(make_runtime, policies, engine_steps) -> None:
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="policy-edit")
    engine(rt, "sync").run_pass()
    assert fresh(site).backend_code == 1
    engine(rt, "policies").run_pass()
    row = fresh(site)
    assert row.name == "s!" and row.changed_by_policy is not None
    assert engine(rt, "policies").run_pass().attempted == 0
    engine_steps.reset()
    assert engine(rt, "sync").run_pass().succeeded == 1
    assert [c["name"] for c in engine_steps.CALLS] == ["s!"]


def test_objects_created_by_a_policy_are_synced(make_runtime, policies, engine_steps) -> None:
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="policy-child")
    summary = rt.run_until_idle()
    assert summary.exit_code == 0
    child = rt.accessor.Slice.objects.get(name="s-auto")
    assert child.site_id == site.id and child.backend_code == 1
    assert {c["name"] for c in engine_steps.CALLS} == {"s", "s-auto"}


def test_failure_backs_off_and_a_change_makes_it_ready(make_runtime, policies, clock) -> None:
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s", behaviour="policy-fail")
    eng = engine(rt, "policies")
    report = eng.run_pass()
    assert report.failed == {("Site", site.id)}
    row = fresh(site)
    assert (row.policy_code, row.policy_status) == (2, "policy refused s")
    assert row.policed is None
    again = eng.run_pass()
    assert again.attempted == 0 and again.next_run == pytest.approx(clock.now + 1)
    clock.advance(1)
    assert eng.run_pass().attempted == 1  # retried after the backoff (as a create again)
    assert [c[1] for c in policies.CALLS] == ["create", "create"]
    row = fresh(site)
    row.behaviour = ""
    row.save()
    assert eng.run_pass().succeeded == 1  # the change made it ready at once
    assert fresh(site).policy_code == 1


def test_base_model_policy_applies_to_sub_models_once(make_runtime, policies) -> None:
    rt = make_runtime()
    edge = rt.accessor.EdgeSite.objects.create(name="e", region="eu")
    report = engine(rt, "policies").run_pass()
    assert report.attempted == 1
    creates = [c for c in policies.CALLS if c[1] == "create"]
    assert creates == [
        ("SitePolicy", "create", "EdgeSite", edge.id, "e"),
        ("EdgeSitePolicy", "create", "EdgeSite", edge.id, "e"),
    ]
    afters = [c[0] for c in policies.CALLS if c[1] == "after"]
    assert afters == ["SitePolicy", "EdgeSitePolicy"]  # every policy's after_policy_save


def test_deletion_waits_for_handle_delete(make_runtime, policies, engine_steps) -> None:
    rt = make_runtime()
    site = rt.accessor.Site.objects.create(name="s")
    rt.run_until_idle()
    fresh(site).delete()
    engine_steps.reset()
    policies.reset()
    engine(rt, "sync").run_pass()
    assert engine_steps.CALLS == []  # held until the policies saw the deletion
    assert rt.accessor.Site.deleted_objects.count() == 1
    engine(rt, "policies").run_pass()
    assert [
        ("SitePolicy", "delete", "Site", site.id, "s"),
        ("SitePolicy", "after", "Site", site.id, "s"),
    ] == policies.CALLS
    engine(rt, "sync").run_pass()
    assert [c["phase"] for c in engine_steps.CALLS] == ["delete"]
    assert rt.accessor.Site.deleted_objects.count() == 0


def test_a_model_without_sync_steps_is_purged_after_its_policies(make_runtime, policies) -> None:
    rt = make_runtime()
    tag = rt.accessor.Tag.objects.create(name="t")
    rt.run_until_idle()
    fresh(tag).delete()
    rt.run_until_idle()
    assert ("TagPolicy", "delete", "Tag", tag.id, "t") in policies.CALLS
    assert rt.accessor.Tag.deleted_objects.count() == 0


def test_a_hung_handler_times_out_while_the_objects_batched_with_it_are_policed(
    make_runtime, policies
) -> None:
    rt = make_runtime(policies={"timeout": 0.5, "workers": 2})
    eng = engine(rt, "policies")
    sites = rt.accessor.Site.objects
    for i in range(40):
        sites.create(name=f"warm-{i}")
    assert eng.run_pass().succeeded == 40  # calls are quick: later ones go in batches
    hung = None
    for i in range(40):
        site = sites.create(name=f"s{i}", behaviour="policy-hang" if i == 5 else "")
        hung = site if i == 5 else hung
    assert hung is not None
    try:
        report = eng.run_pass()
        # the pass ended while the hung call still runs: nothing waited behind it
        [line] = eng.running_calls()
        assert line.startswith(f"policies: Site {hung.id} (timed out after 0.5s")
    finally:
        policies.RELEASE.set()
    assert report.outcomes["timeout"] == 1 and report.succeeded == 39
    creates = Counter(c[4] for c in policies.CALLS if c[1] == "create")
    assert all(creates[f"s{i}"] == 1 for i in range(40))  # exactly one call each
    row = fresh(hung)
    assert (row.policy_code, row.policy_status) == (2, "handle_create timed out after 0.5s")
    assert all(s.policy_code == 1 for s in sites.all() if s.id != hung.id)


def test_pull_step_runs_on_its_interval(make_runtime, policies, clock) -> None:
    import xrt_policy.pull as pull

    rt = make_runtime()
    eng = engine(rt, "pull")
    pull.SOURCE.extend(["pulled-1", "pulled-2"])
    report = eng.run_pass()
    assert report.succeeded == 1 and report.attempted == 0  # never keeps --until-idle going
    assert report.next_run == pytest.approx(clock.now + 60)
    assert sorted(s.name for s in rt.accessor.Site.objects.all()) == ["pulled-1", "pulled-2"]
    assert len(pull.CALLS) == 1
    eng.run_pass()
    assert len(pull.CALLS) == 1  # not due yet
    pull.BROKEN[0] = True
    clock.advance(60)
    report = eng.run_pass()
    assert report.outcomes["error"] == 1 and len(pull.CALLS) == 2
    pull.BROKEN[0] = False
    clock.advance(60)
    assert eng.run_pass().succeeded == 1  # a failure does not stop the schedule
    # the pulled objects are new, so they are synced and policed like any other
    summary = rt.run_until_idle()
    assert summary.exit_code == 0
    assert all(s.backend_code == 1 and s.policy_code == 1 for s in rt.accessor.Site.objects.all())


class PullOutcomes:
    """An observer of the pull outcome hook, as a third-party plugin would be."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, Any]] = []

    @hookimpl
    def xos_runtime_pull_outcome(self, step: Any, outcome: Any) -> None:
        self.seen.append((step, outcome))


def _wait_for(predicate: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds}s")
        time.sleep(0.01)


@pytest.mark.parametrize("where", ["config", "step"])
def test_a_hung_pull_times_out_and_runs_again_only_once_it_returned(
    make_runtime, policies, clock, log_messages, monkeypatch, where
) -> None:
    import xrt_policy.pull as pull

    if where == "config":
        rt = make_runtime(pull={"timeout": 0.2})
    else:
        monkeypatch.setattr(pull.PullSites, "timeout", 0.2)
        rt = make_runtime()
    observer = PullOutcomes()
    rt.plugins.plugin_manager.register(observer)
    eng = engine(rt, "pull")
    pull.HANG[0] = True
    try:
        report = eng.run_pass()  # returns once the call is over its timeout
        assert report.outcomes["timeout"] == 1 and report.succeeded == 0
        [(step, outcome)] = observer.seen
        assert step is pull.PullSites
        assert (outcome.kind, outcome.message) == ("timeout", "pull_records timed out after 0.2s")
        [line] = eng.running_calls()
        assert line.startswith("pull: PullSites.pull_records (timed out after 0.2s, running for")
        for _ in range(3):  # due again, but its call still runs: not called, nothing reported
            clock.advance(60)
            report = eng.run_pass()
            assert report.next_run == pytest.approx(clock.now + 60)
        assert len(pull.CALLS) == 1 and len(observer.seen) == 1
        assert rt.run_once().exit_code == 0  # a timed-out pull leaves no object in error
    finally:
        pull.RELEASE.set()
    _wait_for(
        lambda: any("abandoned pull_records call returned" in m for _, m in log_messages),
        "the abandoned call returned",
    )
    assert eng.running_calls() == []
    pull.HANG[0] = False
    clock.advance(60)
    assert eng.run_pass().succeeded == 1 and len(pull.CALLS) == 2
    assert [o.kind for _, o in observer.seen] == ["timeout", "success"]
