"""Soft delete with cascade, write_protect, deleted_objects and purge."""

from __future__ import annotations

import pytest
from demo_models import demo_models

from xos_runtime.store import ModelAccessor, open_store


@pytest.fixture
def acc(store_url: str) -> ModelAccessor:
    a = open_store(store_url, demo_models())
    yield a
    a.close()


def test_soft_delete_cascades_along_required_links(acc: ModelAccessor) -> None:
    site = acc.Site.objects.create(name="s")
    keep = acc.Site.objects.create(name="keep")
    user = acc.User.objects.create(email="u", site=site)
    slice_ = acc.Slice.objects.create(name="sl", site=keep, creator=user)  # optional link
    acc.User.objects.create(email="other", site=keep)
    site.delete()
    assert site.deleted is True
    assert [s.name for s in acc.Site.objects.all()] == ["keep"]
    assert [s.name for s in acc.Site.deleted_objects.all()] == ["s"]
    assert [u.email for u in acc.User.deleted_objects.all()] == ["u"]
    assert [u.email for u in acc.User.objects.all()] == ["other"]
    # the optional link does not cascade
    assert acc.Slice.objects.get(id=slice_.id).deleted is False
    deleted_user = acc.User.deleted_objects.get(email="u")
    assert deleted_user.enacted is None and deleted_user.policed is None
    assert {o.email for o in acc.fetch_pending(["User"], deleted=True)} == {"u"}
    assert {o.email for o in acc.fetch_policy_pending(["User"], deleted=True)} == {"u"}


def test_cascade_is_transitive(acc: ModelAccessor) -> None:
    site = acc.Site.objects.create(name="s")
    user = acc.User.objects.create(email="u", site=site)
    acc.Slice.objects.create(name="sl", site=site, creator=user)
    site.delete()
    assert acc.Slice.objects.count() == 0 and acc.Slice.deleted_objects.count() == 1


def test_write_protected_object_is_not_deleted(acc: ModelAccessor) -> None:
    site = acc.Site.objects.create(name="s", write_protect=True)
    acc.User.objects.create(email="u", site=site)
    site.delete()
    assert acc.Site.objects.count() == 1 and acc.User.objects.count() == 1


def test_cascade_reaches_write_protected_children(acc: ModelAccessor) -> None:
    site = acc.Site.objects.create(name="s")
    acc.User.objects.create(email="u", site=site, write_protect=True)
    site.delete()
    assert acc.User.objects.count() == 0


def test_purge_removes_row_and_clears_optional_links(acc: ModelAccessor) -> None:
    site = acc.Site.objects.create(name="s")
    user = acc.User.objects.create(email="u", site=site)
    slice_ = acc.Slice.objects.create(name="sl", site=site, creator=user)
    user.delete()
    acc.purge(acc.User.deleted_objects.get(id=user.id))
    assert acc.User.deleted_objects.count() == 0
    assert acc.Slice.objects.get(id=slice_.id).creator is None


def test_deleted_link_target_still_readable(acc: ModelAccessor) -> None:
    site = acc.Site.objects.create(name="s")
    user = acc.User.objects.create(email="u", site=site)
    site.delete()
    assert acc.User.deleted_objects.get(id=user.id).site.name == "s"
