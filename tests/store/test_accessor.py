"""The accessor API of contract section 4, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from demo_models import demo_models

from xos_runtime.exceptions import (
    DoesNotExist,
    MultipleObjectsReturned,
    ObjectValidationError,
    StoreError,
)
from xos_runtime.store import ModelAccessor, open_store


@pytest.fixture
def acc(store_url: str) -> ModelAccessor:
    a = open_store(store_url, demo_models())
    yield a
    a.close()


def test_create_get_filter_exclude_first(acc: ModelAccessor) -> None:
    a = acc.Site.objects.create(name="a", max_users=3)
    b = acc.Site.objects.create(name="b", enabled=False)
    assert a.id is not None and b.id != a.id
    assert acc.Site.objects.get(name="b") == b
    assert [s.name for s in acc.Site.objects.filter(enabled=True)] == ["a"]
    assert [s.name for s in acc.Site.objects.exclude(name="a")] == ["b"]
    assert acc.Site.objects.first() == a
    assert acc.Site.objects.filter(name="zzz").first() is None
    assert acc.Site.objects.get(id=a.id).max_users == 3
    assert [s.name for s in acc.Site.objects.filter(name__in=["a", "b"]).order_by("-name")] == [
        "b",
        "a",
    ]


def test_sequences_and_bool_fields(acc: ModelAccessor) -> None:
    for n in "xyz":
        acc.Site.objects.create(name=n)
    rows = acc.Site.objects.all()
    assert len(rows) == 3
    assert rows[0].name == "x" and rows[-1].name == "z"
    assert [s.name for s in rows[1:]] == ["y", "z"]
    assert all(type(s.enabled) is bool for s in rows)
    assert acc.Site.objects.count() == 3


def test_get_errors(acc: ModelAccessor) -> None:
    acc.Site.objects.create(name="a")
    acc.Site.objects.create(name="b")
    with pytest.raises(DoesNotExist, match="Site matching name='q'"):
        acc.Site.objects.get(name="q")
    with pytest.raises(MultipleObjectsReturned):
        acc.Site.objects.get(enabled=True)


def test_save_changes_and_defaults(acc: ModelAccessor) -> None:
    s = acc.Site(name="new")
    assert s.id is None and s.enabled is True and s.max_users == 10
    s.save()
    s.max_users = 42
    s.save()
    again = acc.Site.objects.get(id=s.id)
    assert again.max_users == 42
    again.name = "renamed"
    again.save(update_fields=["name"])
    assert acc.Site.objects.get(id=s.id).name == "renamed"


def test_forward_and_reverse_links(acc: ModelAccessor) -> None:
    site = acc.Site.objects.create(name="s")
    other = acc.Site.objects.create(name="o")
    u1 = acc.User.objects.create(email="1", site=site)
    acc.User.objects.create(email="2", site_id=site.id)
    acc.User.objects.create(email="3", site=other)
    assert u1.site == site and u1.site_id == site.id
    assert sorted(u.email for u in site.users.all()) == ["1", "2"]
    assert site.users.count() == 2
    assert [u.email for u in acc.User.objects.filter(site=other)] == ["3"]
    made = site.users.create(email="4")
    assert made.site_id == site.id
    u1.site = other
    u1.save()
    assert acc.User.objects.get(email="1").site == other
    slice_ = acc.Slice.objects.create(name="sl", site=site, creator=u1)
    assert list(u1.created_slices.all()) == [slice_]
    assert slice_.creator.email == "1"


def test_inheritance(acc: ModelAccessor) -> None:
    acc.Service.objects.create(name="plain")
    vsg = acc.VSGService.objects.create(name="vsg", vlan=7)
    acc.VRouterService.objects.create(name="vr", asn=2**63 + 5)
    services = acc.Service.objects.all()
    assert sorted(s.name for s in services) == ["plain", "vr", "vsg"]
    assert {type(s).__name__ for s in services} == {"Service"}
    leaf = acc.Service.objects.get(name="vsg").leaf_model
    assert type(leaf).__name__ == "VSGService" and leaf.vlan == 7 and leaf == vsg
    assert acc.Service.objects.get(name="vr").leaf_model.asn == 2**63 + 5
    assert [s.name for s in acc.VSGService.objects.all()] == ["vsg"]
    assert isinstance(vsg, acc.Service)
    assert acc.Service.objects.get(name="plain").leaf_model_name == "Service"
    assert acc.VSGService.objects.filter(name="plain").count() == 0


@pytest.mark.parametrize(
    ("model", "fields", "message"),
    [
        ("Site", {"name": "x", "colour": "red"}, "Site has no field 'colour'"),
        ("Site", {"name": 5}, "Site.name: expected a string, got 5"),
        ("Site", {"name": "x", "enabled": "yes"}, "Site.enabled: expected true or false"),
        ("Site", {"name": "x", "max_users": 2**40}, "out of range for int32"),
        ("Site", {"name": "x" * 30}, "longer than max_length 20"),
        ("Site", {}, "Site.name: a value is required"),
        ("User", {"email": "e"}, "User.site: a Site is required"),
        ("User", {"email": "e", "site_id": 12345}, "User.site: Site id 12345 does not exist"),
        ("VRouterService", {"name": "n", "asn": -1}, "out of range for uint64"),
    ],
)
def test_bad_values_are_refused_and_nothing_written(
    acc: ModelAccessor, model: str, fields: dict, message: str
) -> None:
    cls = acc.get_model_class(model)
    before = cls.objects.count()
    with pytest.raises(ObjectValidationError, match=message.replace("(", r"\(")):
        cls.objects.create(**fields)
    assert cls.objects.count() == before


def test_unknown_lookup_and_model(acc: ModelAccessor) -> None:
    with pytest.raises(ObjectValidationError, match="Site has no field 'nope'"):
        list(acc.Site.objects.filter(nope=1))
    with pytest.raises(ObjectValidationError, match="unknown lookup"):
        acc.Site.objects.filter(name__regex="x")
    with pytest.raises(StoreError, match="no model named 'Nope'"):
        acc.get_model_class("Nope")
    with pytest.raises(AttributeError):
        _ = acc.Nope


def test_update_of_purged_row_fails_cleanly(acc: ModelAccessor) -> None:
    s = acc.Site.objects.create(name="gone")
    s.delete()
    acc.purge(acc.Site.deleted_objects.get(id=s.id))
    s.name = "again"
    with pytest.raises(StoreError, match="no longer exists"):
        s.save()


def test_changed_fields_and_diff(acc: ModelAccessor) -> None:
    s = acc.Site.objects.create(name="a")
    assert s.changed_fields == []
    s.name = "b"
    assert s.changed_fields == ["name"] and s.has_field_changed("name")
    assert s.get_field_diff("name") == ("a", "b")
    assert s.diff == {"name": ("a", "b")}
    assert s.to_dict()["name"] == "b"


def test_exclude_and_ne_keep_rows_whose_field_is_null(acc: ModelAccessor) -> None:
    site = acc.Site.objects.create(name="s")
    acc.User.objects.create(email="none", site=site)
    acc.User.objects.create(email="x", site=site, score=1.0)
    acc.User.objects.create(email="y", site=site, score=2.0)
    assert sorted(u.email for u in acc.User.objects.exclude(score=1.0)) == ["none", "y"]
    assert sorted(u.email for u in acc.User.objects.exclude(email="none", score=1.0)) == [
        "none",
        "x",
        "y",
    ]
    assert sorted(u.email for u in acc.User.objects.filter(score__ne=1.0)) == ["none", "y"]


def test_objects_read_in_bulk_are_those_read_one_by_one(acc: ModelAccessor) -> None:
    """`fetch_pending` reads rows as tuples (`select_rows`): the objects it makes hold the
    same values, bools as bools, the whole row by name, and save only what changed."""
    acc.Site.objects.create(name="a", max_users=3, enabled=False)
    bulk = acc.fetch_pending(["Site"])
    one = acc.Site.objects.get(name="a")
    assert [o.to_dict() for o in bulk] == [one.to_dict()]
    obj = bulk[0]
    assert type(obj.enabled) is bool and obj.enabled is False
    assert obj.fetched_row["name"] == "a" and dict(obj.fetched_row) == dict(one.fetched_row)
    assert obj.changed_fields == []
    obj.max_users = 4
    assert obj.changed_fields == ["max_users"]
    obj.save()
    assert acc.Site.objects.get(name="a").max_users == 4


def test_a_reader_of_a_partial_row_leaves_missing_columns_unset(acc: ModelAccessor) -> None:
    acc.Site.objects.create(name="a", max_users=3)
    keys, rows = acc.store.select_rows("Site", columns=("id", "name"))
    site = acc.get_model_class("Site")
    obj = site._from_values(site.model_meta().reader(keys), rows[0])
    assert (obj.name, obj.max_users) == ("a", None)


def test_columns_by_id_reads_the_rows_asked_for(acc: ModelAccessor) -> None:
    """The engines' re-read of what they claimed: one statement for any number of ids,
    missing ids absent, on SQLite and PostgreSQL."""
    ids = [acc.Site.objects.create(name=f"s{i}", enabled=i % 2 == 0).id for i in range(5)]
    store = acc.store
    with store.write() as conn:
        rows = store.columns_by_id(
            conn, "Site", [ids[0], ids[3], 10_000], ("id", "name", "enabled")
        )
        assert sorted((r[0], r[1], bool(r[2])) for r in rows) == [
            (ids[0], "s0", True),
            (ids[3], "s3", False),
        ]
        many = store.columns_by_id(conn, "Site", ids, ("id",))
        assert sorted(r[0] for r in many) == sorted(ids)
        assert store.columns_by_id(conn, "Site", [], ("id",)) == []


def test_bulk_create_writes_all_in_one_transaction_or_none(acc: ModelAccessor) -> None:
    """`Model.objects.bulk_create`: the objects back with their ids and a user's stamps,
    from dicts or new objects; a refused one (here the third) writes none of them."""
    made = acc.Site.objects.bulk_create(
        [{"name": "a", "max_users": 1}, acc.Site(name="b"), {"name": "c"}]
    )
    assert [s.name for s in made] == ["a", "b", "c"]
    assert all(s.id is not None and not s.is_new and s.updated for s in made)
    assert made[0].updated < made[1].updated < made[2].updated  # distinct, increasing
    assert sorted(s.name for s in acc.Site.objects.all()) == ["a", "b", "c"]
    assert acc.Site.objects.get(name="a").max_users == 1
    with pytest.raises(ObjectValidationError):
        acc.Site.objects.bulk_create([{"name": "d"}, {"name": "e"}, {"max_users": 2}])
    assert acc.Site.objects.count() == 3  # nothing of the refused batch was written
    with pytest.raises(StoreError, match="already stored"):
        acc.Site.objects.bulk_create([made[0]])
    assert acc.Site.objects.bulk_create([]) == []


def test_atomic_commits_all_at_the_end_or_nothing(acc: ModelAccessor) -> None:
    """`with accessor.atomic():` one transaction for the block (reads inside see its writes,
    a nested block joins it); an exception rolls everything back and propagates."""
    seen = acc.subscribe()
    try:
        with acc.atomic():
            a = acc.Site.objects.create(name="a")
            with acc.atomic():  # nested: joins the outer block
                acc.User.objects.create(email="u@example.org", site=a)
            assert acc.Site.objects.get(name="a").id == a.id  # reads see the block's writes
            a.max_users = 7
            a.save()
        assert acc.Site.objects.get(name="a").max_users == 7
        assert acc.User.objects.get(email="u@example.org").site_id == a.id
        with pytest.raises(RuntimeError, match="changed my mind"), acc.atomic():
            acc.Site.objects.create(name="b")
            acc.Site.objects.get(name="a").delete()
            raise RuntimeError("changed my mind")
        assert [s.name for s in acc.Site.objects.all()] == ["a"]  # nothing of it stayed
        assert acc.User.objects.count() == 1
        changed = seen.wait(5)  # the committed blocks were announced
        assert changed is not None and {"Site", "User"} <= changed
    finally:
        seen.close()


def test_policy_work_reads_leaf_objects_of_the_policed_families(acc: ModelAccessor) -> None:
    big = 2**64 - 5  # a uint64 past the signed range: its column converts it
    vr = acc.VRouterService.objects.create(name="vr", asn=big)
    vsg = acc.VSGService.objects.create(name="vsg", vlan=7)
    plain = acc.Service.objects.create(name="plain")
    site = acc.Site.objects.create(name="s", enabled=False)
    gone = acc.Site.objects.create(name="gone")
    gone.delete()

    objects, others = acc.fetch_policy_work(["VRouterService", "Site"])
    by_name = {o.name: o for o in objects}
    assert others == [] and set(by_name) == {"vr", "s", "gone"}  # not VSG, not plain
    assert type(by_name["vr"]).__name__ == "VRouterService" and by_name["vr"].asn == big
    assert by_name["s"].enabled is False and by_name["gone"].deleted is True
    assert by_name["vr"].store_key == ("Service", vr.id)

    objects, _ = acc.fetch_policy_work(["Service"])  # a base model: its whole family
    assert {(type(o).__name__, o.id) for o in objects} == {
        ("VRouterService", vr.id),
        ("VSGService", vsg.id),
        ("Service", plain.id),
    }

    objects, others = acc.fetch_policy_work(["Site"], only={"Site": {site.id}})
    assert [o.id for o in objects] == [site.id] and others == [("Site", gone.id)]
