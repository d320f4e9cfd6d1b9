"""XOS change tracking (reference 1.4, 1.9, 3.2): which save moves which timestamp."""

from __future__ import annotations

import pytest
from demo_models import demo_models

from xos_runtime.store import ModelAccessor, MonotonicClock, acting_as, open_store


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def acc(store_url: str, clock: FakeTime) -> ModelAccessor:
    a = open_store(store_url, demo_models(), clock=MonotonicClock(clock))
    yield a
    a.close()


def pending(acc: ModelAccessor, model: str = "Site") -> list[str]:
    return [o.name for o in acc.fetch_pending([model])]


def policy_pending(acc: ModelAccessor, model: str = "Site") -> list[str]:
    return [o.name for o in acc.fetch_policy_pending([model])]


def enact(obj) -> None:  # what the sync engine writes on success
    with acting_as("sync"):
        obj.enacted = max(obj.updated, obj.changed_by_policy or 0)
        obj.backend_code = 1
        obj.save(update_fields=["enacted", "backend_code"])


def police(obj) -> None:
    with acting_as("policy"):
        obj.policed = max(obj.updated, obj.changed_by_step or 0)
        obj.save(update_fields=["policed"])


def test_new_objects_are_pending_for_sync_and_policy(acc: ModelAccessor) -> None:
    s = acc.Site.objects.create(name="a")
    assert s.created == s.updated and s.enacted is None and s.policed is None
    assert pending(acc) == ["a"] and policy_pending(acc) == ["a"]
    enact(s)
    police(s)
    assert pending(acc) == [] and policy_pending(acc) == []


def test_user_save_bumps_updated_and_makes_pending(acc: ModelAccessor, clock: FakeTime) -> None:
    s = acc.Site.objects.create(name="a")
    enact(s)
    police(s)
    clock.now += 10
    s.max_users = 5
    s.save()
    assert s.updated == pytest.approx(1010.0)
    assert pending(acc) == ["a"] and policy_pending(acc) == ["a"]


def test_user_save_without_changes_still_marks_dirty(acc: ModelAccessor, clock: FakeTime) -> None:
    s = acc.Site.objects.create(name="a")
    enact(s)
    clock.now += 1
    acc.Site.objects.get(id=s.id).save()  # XOS: a plain save() asks for a resync
    assert pending(acc) == ["a"]


def test_sync_step_change_retriggers_policies_not_steps(
    acc: ModelAccessor, clock: FakeTime
) -> None:
    s = acc.Site.objects.create(name="a")
    enact(s)
    police(s)
    clock.now += 5
    with acting_as("sync"):
        obj = acc.Site.objects.get(id=s.id)
        obj.max_users = 99
        obj.save()
    fresh = acc.Site.objects.get(id=s.id)
    assert fresh.changed_by_step is not None and fresh.updated == s.updated
    assert pending(acc) == []
    assert policy_pending(acc) == ["a"]


def test_policy_change_retriggers_steps_not_policies(acc: ModelAccessor, clock: FakeTime) -> None:
    s = acc.Site.objects.create(name="a")
    enact(s)
    police(s)
    clock.now += 5
    with acting_as("policy"):
        obj = acc.Site.objects.get(id=s.id)
        obj.enabled = False
        obj.save()
    fresh = acc.Site.objects.get(id=s.id)
    assert fresh.changed_by_policy is not None and fresh.updated == s.updated
    assert pending(acc) == ["a"]
    assert policy_pending(acc) == []
    enact(fresh)
    assert pending(acc) == []


def test_bookkeeping_only_saves_move_nothing(acc: ModelAccessor, clock: FakeTime) -> None:
    s = acc.Site.objects.create(name="a")
    enact(s)
    police(s)
    clock.now += 5
    with acting_as("sync"):
        s.backend_status = "OK"
        s.save(update_fields=["backend_status"])
    fresh = acc.Site.objects.get(id=s.id)
    assert fresh.changed_by_step is None and fresh.backend_status == "OK"
    assert pending(acc) == [] and policy_pending(acc) == []


def test_engines_cannot_move_updated_directly(acc: ModelAccessor, clock: FakeTime) -> None:
    s = acc.Site.objects.create(name="a")
    for kind in ("sync", "policy", "pull", "event"):
        with acting_as(kind):
            s.updated = 5_000_000.0
            s.save(update_fields=["updated"])
        assert acc.Site.objects.get(id=s.id).updated == pytest.approx(1000.0)


def test_pull_and_event_saves_need_always_update_timestamp(
    acc: ModelAccessor, clock: FakeTime
) -> None:
    s = acc.Site.objects.create(name="a")
    enact(s)
    police(s)
    for kind in ("pull", "event"):
        clock.now += 5
        with acting_as(kind):
            s.max_users += 1
            s.save()
        assert pending(acc) == [] and policy_pending(acc) == []
        with acting_as(kind):
            s.max_users += 1
            s.save(always_update_timestamp=True)
        assert pending(acc) == ["a"] and policy_pending(acc) == ["a"]
        enact(acc.Site.objects.get(id=s.id))
        police(acc.Site.objects.get(id=s.id))


def test_always_update_timestamp_from_a_step(acc: ModelAccessor, clock: FakeTime) -> None:
    s = acc.Site.objects.create(name="a")
    enact(s)
    clock.now += 5
    with acting_as("sync"):
        s.save(update_fields=["backend_status"], always_update_timestamp=True)
    assert pending(acc) == ["a"]


def test_edit_during_sync_leaves_object_pending(acc: ModelAccessor, clock: FakeTime) -> None:
    s = acc.Site.objects.create(name="a")
    fetched = acc.fetch_pending(["Site"])[0]
    clock.now += 1
    user_copy = acc.Site.objects.get(id=s.id)
    user_copy.max_users = 1
    user_copy.save()  # lands while the "sync" runs
    enact(fetched)  # enacted = the version fetched before the sync began
    assert pending(acc) == ["a"]


def test_updated_never_goes_backwards_even_if_the_clock_does(
    acc: ModelAccessor, clock: FakeTime
) -> None:
    s = acc.Site.objects.create(name="a")
    enact(s)
    clock.now -= 500  # wall clock stepped back
    s.max_users = 2
    s.save()
    assert s.updated > s.enacted
    assert pending(acc) == ["a"]


def test_stale_copy_does_not_spuriously_change(acc: ModelAccessor, clock: FakeTime) -> None:
    s = acc.Site.objects.create(name="a")
    stale = acc.Site.objects.get(id=s.id)
    s.max_users = 77
    s.save()
    enact(acc.Site.objects.get(id=s.id))
    police(acc.Site.objects.get(id=s.id))
    clock.now += 5
    with acting_as("sync"):
        stale.backend_status = "x"
        stale.save()  # only what this copy changed is written
    fresh = acc.Site.objects.get(id=s.id)
    assert fresh.max_users == 77 and fresh.changed_by_step is None


def test_flags_exclude_from_pending(acc: ModelAccessor) -> None:
    acc.Site.objects.create(name="lazy", lazy_blocked=True)
    acc.Site.objects.create(name="nosync", no_sync=True)
    acc.Site.objects.create(name="nopolicy", no_policy=True)
    acc.Site.objects.create(name="normal")
    assert sorted(pending(acc)) == ["nopolicy", "normal"]
    assert sorted(policy_pending(acc)) == ["lazy", "normal", "nosync"]


def test_pending_on_a_base_model_includes_sub_models_once(acc: ModelAccessor) -> None:
    acc.Service.objects.create(name="s")
    acc.VSGService.objects.create(name="v")
    found = acc.fetch_pending(["Service", "VSGService"])
    assert sorted(o.name for o in found) == ["s", "v"]
    assert len(acc.fetch_pending(["VSGService"])) == 1
