"""Schema evolution: additive changes keep rows, destructive ones are refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import attrs
import pytest
import sqlalchemy as sa
from demo_models import demo_models, f

from xos_runtime.exceptions import SchemaChangeRefused, StoreError
from xos_runtime.models.definitions import Model, ModelSet
from xos_runtime.store import open_store


def with_model(models: ModelSet, model: Model) -> ModelSet:
    return ModelSet({**models.models, model.name: model})


def test_store_remembers_models(store_url: str) -> None:
    a = open_store(store_url, demo_models())
    a.Site.objects.create(name="kept")
    a.close()
    b = open_store(store_url)  # no definitions given
    assert [s.name for s in b.Site.objects.all()] == ["kept"]
    b.close()


def test_open_without_models_on_an_empty_store(tmp_path) -> None:
    with pytest.raises(StoreError, match="holds no model definitions"):
        open_store(f"sqlite:///{tmp_path}/empty.db")


def test_adding_a_model_and_a_nullable_field_keeps_rows(store_url: str) -> None:
    a = open_store(store_url, demo_models())
    a.Site.objects.create(name="s1")
    a.close()
    models = demo_models()
    site = models.get("Site")
    site = attrs.evolve(site, fields=(*site.fields, f("region", "string", "Site")))
    models = with_model(models, site)
    models = with_model(models, Model("Image", fields=(f("name", "string", "Image"),)))
    b = open_store(store_url, models)
    s = b.Site.objects.get(name="s1")
    assert s.region is None
    s.region = "eu"
    s.save()
    b.Image.objects.create(name="img")
    assert b.Site.objects.get(name="s1").region == "eu"
    b.close()


def test_new_field_with_default_fills_existing_rows_on_read(store_url: str) -> None:
    a = open_store(store_url, demo_models())
    a.Site.objects.create(name="s1")
    a.close()
    models = demo_models()
    site = models.get("Site")
    site = attrs.evolve(
        site, fields=(*site.fields, f("tier", "int32", "Site", required=True, default=3))
    )
    b = open_store(store_url, with_model(models, site))
    assert b.Site.objects.create(name="s2").tier == 3
    assert b.Site.objects.get(name="s1").tier == 3  # the object that was already there
    b.close()


@pytest.mark.parametrize("change", ["drop_model", "drop_field", "retype", "required_no_default"])
def test_destructive_changes_are_refused(store_url: str, change: str) -> None:
    a = open_store(store_url, demo_models())
    a.Site.objects.create(name="s1")
    a.close()
    models = demo_models()
    site = models.get("Site")
    if change == "drop_model":
        new = ModelSet({k: v for k, v in models.models.items() if k != "Site"})
        # User and Slice link to Site: drop them too, so only the data loss is at stake
        new = ModelSet({k: v for k, v in new.models.items() if k not in ("User", "Slice")})
        expected = "model Site is no longer defined but the store holds 1"
    elif change == "drop_field":
        new = with_model(models, attrs.evolve(site, fields=site.fields[:1]))
        expected = "field Site.enabled was removed while the store holds 1 Site objects"
    elif change == "retype":
        fields = (site.fields[0], f("enabled", "int32", "Site"), *site.fields[2:])
        new = with_model(models, attrs.evolve(site, fields=fields))
        expected = "field Site.enabled changed type from bool to int32"
    else:
        fields = (*site.fields, f("must", "string", "Site", required=True))
        new = with_model(models, attrs.evolve(site, fields=fields))
        expected = "new required field Site.must has no default"
    with pytest.raises(SchemaChangeRefused, match=expected):
        open_store(store_url, new)
    again = open_store(store_url)  # the store is untouched
    assert [s.name for s in again.Site.objects.all()] == ["s1"]
    assert again.models.to_json() == models.to_json()
    again.close()


def test_dropping_an_empty_model_is_allowed(store_url: str) -> None:
    a = open_store(store_url, demo_models())
    a.close()
    models = demo_models()
    smaller = ModelSet({k: v for k, v in models.models.items() if k != "VRouterService"})
    b = open_store(store_url, smaller)
    assert not b.has_model_class("VRouterService")
    b.close()


def test_connect_from_a_second_process(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    a = open_store(url, demo_models())
    site = a.Site.objects.create(name="from-first")
    a.close()
    code = textwrap.dedent(
        f"""
        from xos_runtime.store import open_store
        acc = open_store({url!r})
        s = acc.Site.objects.get(name="from-first")
        acc.User.objects.create(email="from-second", site=s)
        print(acc.User.objects.count())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    b = open_store(url)
    assert b.User.objects.get(email="from-second").site == site
    b.close()


@pytest.mark.parametrize(
    "endpoint",
    ["sqlite:////nonexistent-dir/x.db", "postgresql://nobody@127.0.0.1:1/none"],
)
def test_a_store_that_cannot_be_opened_is_named(endpoint: str) -> None:
    with pytest.raises(StoreError, match=r"accessor\.endpoint .*: cannot open the store: "):
        open_store(endpoint, demo_models())


def _recorded(store_url: str) -> dict[str, str]:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT key, value FROM xos_runtime_meta"))
            return {str(k): str(v) for k, v in rows}
    finally:
        engine.dispose()


def test_the_store_records_its_schema_and_checks_tables_only_when_it_changed(
    tmp_path,
) -> None:
    """A start that finds the same models and schema digest skips the table checks; a store
    without a digest (made by an older version) or with other models gets them."""
    from xos_runtime.store.schema import Schema

    url = f"sqlite:///{tmp_path}/s.db"
    open_store(url, demo_models()).close()
    assert _recorded(url)["schema"] == Schema(demo_models()).digest()
    # An index lost and no digest recorded (an older version's store): the index comes back.
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        index = next(iter(Schema(demo_models()).table("Site").indexes))
        conn.execute(sa.text(f'DROP INDEX "{index.name}"'))
        conn.execute(sa.text("DELETE FROM xos_runtime_meta WHERE key = 'schema'"))
    open_store(url, demo_models()).close()
    with engine.connect() as conn:
        assert index.name in {i["name"] for i in sa.inspect(conn).get_indexes("Site")}
    engine.dispose()
    # Other models: their new column is added and the digest follows.
    models = demo_models()
    site = models.get("Site")
    nickname = f("nickname", "string", "Site")
    changed = with_model(models, attrs.evolve(site, fields=(*site.fields, nickname)))
    a = open_store(url, changed)
    a.Site.objects.create(name="x", nickname="y")
    a.close()
    assert _recorded(url)["schema"] == Schema(changed).digest() != Schema(demo_models()).digest()


def test_a_sub_models_new_default_fills_only_its_own_rows(store_url: str) -> None:
    a = open_store(store_url, demo_models())
    a.Service.objects.create(name="plain")
    a.VSGService.objects.create(name="vsg")
    a.VRouterService.objects.create(name="vrouter")
    a.close()
    models = demo_models()
    vsg = models.get("VSGService")
    tier = f("tier", "int32", "VSGService", required=True, default=7)
    b = open_store(store_url, with_model(models, attrs.evolve(vsg, fields=(*vsg.fields, tier))))
    assert b.VSGService.objects.get(name="vsg").tier == 7
    with b.store.write() as conn:  # the other models' rows of the shared table stay unset
        rows = conn.execute(sa.text('SELECT name, tier FROM "Service" ORDER BY name')).all()
    assert [tuple(r) for r in rows] == [("plain", None), ("vrouter", None), ("vsg", 7)]
    b.close()


def test_opening_a_store_another_process_holds_busy_tries_again(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite file that another process is creating can refuse the first statements of a
    new connection at once ('database is locked', busy timeout or not): opening tries again;
    any other error stops it at once."""
    import sqlite3

    from xos_runtime.store.sqlstore import SqlStore

    real = SqlStore._reconcile
    calls: list[int] = []

    def flaky(self: SqlStore, models: ModelSet | None) -> ModelSet:
        calls.append(1)
        if len(calls) < 3:
            raise sa.exc.OperationalError(
                "BEGIN", {}, sqlite3.OperationalError("database is locked")
            )
        return real(self, models)

    monkeypatch.setattr(SqlStore, "_reconcile", flaky)
    a = open_store(f"sqlite:///{tmp_path}/busy.db", demo_models())
    a.Site.objects.create(name="opened")
    a.close()
    assert len(calls) == 3

    def broken(self: SqlStore, models: ModelSet | None) -> ModelSet:
        calls.append(1)
        raise sa.exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("disk I/O error"))

    calls.clear()
    monkeypatch.setattr(SqlStore, "_reconcile", broken)
    with pytest.raises(StoreError, match="cannot open the store: disk I/O error"):
        open_store(f"sqlite:///{tmp_path}/broken.db", demo_models())
    assert len(calls) == 1
