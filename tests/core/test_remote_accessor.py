"""The remote accessor: `xos_runtime.connect("http://...")` against a real `core serve`.

What a script does over the core must be what the same script does on the store: the
objects the script makes are read back from the store file itself.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

import xos_runtime
from xos_runtime.exceptions import DoesNotExist, ObjectValidationError, StoreError
from xos_runtime.store import open_store
from xos_runtime.store.remote import RemoteAccessor

from .conftest import PASSWORDS, Core, Project


def _url(core: Core, user: str = "alice") -> str:
    return core.url.replace("://", f"://{user}:{PASSWORDS[user]}@")


@pytest.fixture()
def remote(core: Core) -> RemoteAccessor:
    acc = xos_runtime.connect(_url(core))
    assert isinstance(acc, RemoteAccessor)
    yield acc
    acc.close()


def test_a_script_round_trip_over_the_core(
    core: Core, core_project: Project, remote: RemoteAccessor
) -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    Site = remote.Site
    site = Site.objects.create(name=name, quota=3)
    assert site.id is not None and site.enabled is True and site.backend_code == 0
    other = Site(name=name + "-b", ratio=0.5)
    other.save()
    assert other.id is not None and other.id != site.id

    # Filters: equality at the core, the other lookups and exclude here.
    assert [o.id for o in Site.objects.filter(name=name)] == [site.id]
    assert Site.objects.filter(name__startswith=name).count() == 2
    assert [o.id for o in Site.objects.filter(name__startswith=name).exclude(quota=3)] == [other.id]
    assert Site.objects.filter(name__startswith=name, quota__gt=2).first() == site
    assert Site.objects.get(id=site.id).name == name
    with pytest.raises(DoesNotExist):
        Site.objects.get(name=name + "-none")
    ordered = Site.objects.filter(name__startswith=name).order_by("-name")
    assert [o.name for o in ordered] == [name + "-b", name]

    # Links, forward and reverse, and to_dict with links as ids.
    Slice = remote.get_model_class("Slice")
    sl = Slice.objects.create(name="slice-" + name, site=site)
    assert sl.site_id == site.id and sl.site == site
    assert [s.id for s in site.slices.all()] == [sl.id]
    made = site.slices.create(name="slice2-" + name)
    assert made.site_id == site.id
    as_dict = sl.to_dict()
    assert as_dict["site_id"] == site.id and as_dict["backup_id"] is None
    assert {"id", "created", "updated", "enacted", "backend_status"} <= set(as_dict)

    # An update writes only what changed, and moves `updated`.
    before = Site.objects.get(id=site.id).updated
    site.quota = 7
    site.save()
    assert site.updated is not None and site.updated > before
    stale = Site.objects.get(id=other.id)
    fresh = Site.objects.get(id=other.id)
    fresh.quota = 11
    fresh.save()
    stale.ratio = 0.25
    stale.save()  # sends ratio only: the other edit of quota stays
    both = Site.objects.get(id=other.id)
    assert (both.quota, both.ratio) == (11, 0.25)
    site.save(update_fields=["name"])  # nothing changed, nothing lost

    with pytest.raises(ObjectValidationError, match="does not exist"):
        Slice.objects.create(name="orphan", site_id=2**31 - 2)
    with pytest.raises(ObjectValidationError, match="quota"):
        Site.objects.create(name=name + "-c", quota="many")

    # Delete: soft, cascading along required links; deleted_objects shows them.
    site.delete()
    assert site.deleted is True
    assert not Site.objects.filter(id=site.id)
    assert {o.id for o in Slice.deleted_objects.filter(site_id=site.id)} == {sl.id, made.id}
    assert Slice.deleted_objects.get(id=sl.id).site == site  # a link to a deleted row

    # What the engines would work on, as the core finds it.
    pending = remote.fetch_pending(["Site"])
    assert other in pending and site not in pending
    assert site in remote.fetch_pending("Site", deleted=True)
    assert other in remote.fetch_policy_pending(["Site"])
    with pytest.raises(StoreError, match="atomic"):
        remote.atomic()

    # The store itself agrees.
    local = open_store(core_project.url)
    try:
        row = local.Site.objects.get(id=other.id)
        assert (row.quota, row.ratio) == (11, 0.25)
        assert local.Site.deleted_objects.get(id=site.id).quota == 7
        assert local.Slice.deleted_objects.get(id=sl.id).site_id == site.id
    finally:
        local.close()


def test_connect_reads_a_config_with_an_http_endpoint(core: Core, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORDS["alice"] + "\n")
    config = tmp_path / "remote.yaml"
    config.write_text(
        f"name: remote\naccessor: {{endpoint: '{core.url}', username: alice, password: '@pw'}}\n"
    )
    acc = xos_runtime.connect(config)
    try:
        assert isinstance(acc, RemoteAccessor)
        assert {"Site", "Slice", "Widget"} <= set(acc.get_all_model_classes())
        widget = acc.Widget.objects.create(note="over http", size=2**40)
        assert acc.Widget.objects.get(id=widget.id).size == 2**40
    finally:
        acc.close()
