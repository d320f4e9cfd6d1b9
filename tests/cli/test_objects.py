"""`xos-runtime objects list/show/create/update/delete`, in-process, checked against the store."""

from __future__ import annotations

from typing import Any

import pytest

import xos_runtime
from xos_runtime.cli.main import main

from .conftest import (
    BOOKKEEPING,
    Cli,
    Project,
    Snapshot,
    config_text,
    make_project,
    store_snapshot,
)

SITE_FIELDS = BOOKKEEPING | {"name", "enabled", "quota"}
USER_FIELDS = BOOKKEEPING | {"email", "site"}


def _ok(result: Any) -> Any:
    assert result.code == 0, result.err
    assert result.err == ""
    return result


def _created(xrt: Cli, model: str, *pairs: str) -> dict[str, Any]:
    obj: dict[str, Any] = _ok(xrt("objects", "create", "--json", model, *pairs)).json()
    return obj


@pytest.fixture(scope="module")
def shared_seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Snapshot]:
    """One project for the tests that must not change it, and its rows: `seeded`, plus
    Site 2 's2' (disabled, no quota) and Site 3 's3' (quota 5)."""
    proj = make_project(tmp_path_factory.mktemp("shared"))
    for argv in (
        ("Site", "name=s1", "quota=5"),
        ("User", "email=a@example.org", "site=1"),
        ("Site", "name=s2", "enabled=false"),
        ("Site", "name=s3", "quota=5"),
    ):
        assert main(["objects", "create", *argv, "-C", str(proj.config)]) == 0
    return proj, store_snapshot(proj.url)


# --- create -----------------------------------------------------------------------------------


def test_create_json_prints_one_object_with_every_field(xrt: Cli, project: Project) -> None:
    obj = _ok(xrt("objects", "create", "--json", "Site", "name=s1", "quota=5")).json()

    assert isinstance(obj, dict)
    assert set(obj) == SITE_FIELDS
    assert obj["id"] == 1
    assert (obj["name"], obj["enabled"], obj["quota"]) == ("s1", True, 5)  # enabled: default
    assert obj["leaf_model_name"] == "Site"
    assert obj["deleted"] is False
    assert obj["created"] == obj["updated"]
    assert obj["enacted"] is None

    acc = xos_runtime.connect(project.url)
    try:
        site = acc.Site.objects.get(id=1)
        assert (site.name, site.enabled, site.quota) == ("s1", True, 5)
        assert site.to_dict() == obj  # every column, as the command printed it
    finally:
        acc.close()


def test_create_human_output(xrt: Cli) -> None:
    lines = _ok(xrt("objects", "create", "Site", "name=s1")).out.splitlines()
    assert lines[0] == "Site 1"
    rows = dict(line.split(None, 1) for line in lines[1:])
    assert set(rows) == SITE_FIELDS
    assert rows["name"] == "s1"
    assert rows["enabled"] == "True"
    assert rows["quota"] == "None"


def test_create_link_by_id_prints_the_link_as_its_id(xrt: Cli, project: Project) -> None:
    _ok(xrt("objects", "create", "Site", "name=s1"))
    user = _ok(xrt("objects", "create", "--json", "User", "email=a@example.org", "site=1")).json()

    assert set(user) == USER_FIELDS
    assert user["site"] == 1
    assert "site_id" not in user

    acc = xos_runtime.connect(project.url)
    try:
        stored = acc.User.objects.get(id=user["id"])
        assert stored.site.name == "s1"
        assert [u.email for u in acc.Site.objects.get(id=1).users.all()] == ["a@example.org"]
    finally:
        acc.close()


BOOLS = {"true": True, "True": True, "yes": True, "on": True, "1": True}
BOOLS |= {"false": False, "FALSE": False, "no": False, "off": False, "0": False}


def test_bool_parsing(xrt: Cli) -> None:
    parsed = {text: _created(xrt, "Site", "name=b", f"enabled={text}")["enabled"] for text in BOOLS}
    assert parsed == BOOLS
    assert all(type(v) is bool for v in parsed.values())


def test_int_parsing_and_null(xrt: Cli) -> None:
    ints = {"0": 0, "-7": -7, "2147483647": 2147483647, "-2147483648": -(2**31), "null": None}
    parsed = {text: _created(xrt, "Site", "name=q", f"quota={text}")["quota"] for text in ints}
    assert parsed == ints
    assert [type(v) for v in parsed.values()] == [int, int, int, int, type(None)]


def test_string_value_keeps_everything_after_the_first_equals_sign(xrt: Cli) -> None:
    obj = _ok(xrt("objects", "create", "--json", "Site", "name=a=b c")).json()
    assert obj["name"] == "a=b c"


def test_sub_model_create_and_listing_the_parent_shows_it(xrt: Cli, project: Project) -> None:
    _ok(xrt("objects", "create", "Service", "name=plain"))
    vsg = _ok(xrt("objects", "create", "--json", "VSG", "name=v1", "vlan=3")).json()

    assert set(vsg) == BOOKKEEPING | {"name", "vlan"}
    assert (vsg["id"], vsg["name"], vsg["vlan"], vsg["leaf_model_name"]) == (2, "v1", 3, "VSG")

    services = _ok(xrt("objects", "list", "--json", "Service")).json()
    assert [(s["id"], s["name"], s["leaf_model_name"]) for s in services] == [
        (1, "plain", "Service"),
        (2, "v1", "VSG"),
    ]
    vsgs = _ok(xrt("objects", "list", "--json", "VSG")).json()
    assert [(v["id"], v["name"], v["vlan"]) for v in vsgs] == [(2, "v1", 3)]

    shown = _ok(xrt("objects", "show", "--json", "Service", "2")).json()
    assert (shown["name"], shown["leaf_model_name"]) == ("v1", "VSG")

    acc = xos_runtime.connect(project.url)
    try:
        leaf = acc.Service.objects.get(id=2).leaf_model
        assert (leaf.model_name, leaf.vlan) == ("VSG", 3)
    finally:
        acc.close()


# --- show / list --------------------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_show_json_is_what_create_printed(xrt: Cli) -> None:
    created = _ok(xrt("objects", "create", "--json", "Site", "name=s2", "enabled=off")).json()
    shown = _ok(xrt("objects", "show", "--json", "Site", str(created["id"]))).json()
    assert shown == created


@pytest.mark.usefixtures("seeded")
def test_show_human(xrt: Cli) -> None:
    lines = _ok(xrt("objects", "show", "User", "1")).out.splitlines()
    assert lines[0] == "User 1"
    rows = dict(line.split(None, 1) for line in lines[1:])
    assert set(rows) == USER_FIELDS
    assert (rows["email"], rows["site"]) == ("a@example.org", "1")


@pytest.mark.usefixtures("seeded")
def test_list_json_is_an_array_of_the_live_rows(xrt: Cli) -> None:
    _ok(xrt("objects", "create", "Site", "name=s2", "enabled=false"))
    rows = _ok(xrt("objects", "list", "--json", "Site")).json()
    assert isinstance(rows, list)
    assert [(r["id"], r["name"], r["enabled"], r["quota"]) for r in rows] == [
        (1, "s1", True, 5),
        (2, "s2", False, None),
    ]
    assert all(set(r) == SITE_FIELDS for r in rows)
    assert rows[0] == _ok(xrt("objects", "show", "--json", "Site", "1")).json()


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ((), ["s1", "s2", "s3"]),
        (("enabled=false",), ["s2"]),
        (("enabled=true",), ["s1", "s3"]),
        (("quota=null",), ["s2"]),
        (("quota=5",), ["s1", "s3"]),
        (("quota=5", "name=s3"), ["s3"]),
        (("name=nobody",), []),
    ],
)
def test_list_filters(
    cli: Cli, shared_seeded: tuple[Project, Snapshot], filters: tuple[str, ...], names: list[str]
) -> None:
    project, _rows = shared_seeded
    rows = _ok(cli("objects", "list", "--json", "Site", *filters, "-C", project.config)).json()
    assert [r["name"] for r in rows] == names


@pytest.mark.usefixtures("seeded")
def test_list_filter_on_link(xrt: Cli) -> None:
    _ok(xrt("objects", "create", "Site", "name=s2"))
    _ok(xrt("objects", "create", "User", "email=b@example.org", "site=2"))
    by_site = {
        site: [u["email"] for u in _ok(xrt("objects", "list", "--json", "User", pair)).json()]
        for site, pair in (("1", "site=1"), ("2", "site=2"), ("2 by column", "site_id=2"))
    }
    assert by_site == {
        "1": ["a@example.org"],
        "2": ["b@example.org"],
        "2 by column": ["b@example.org"],
    }


@pytest.mark.usefixtures("seeded")
def test_list_human_table(xrt: Cli) -> None:
    lines = _ok(xrt("objects", "list", "Site")).out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ENABLED", "QUOTA", "BACKEND_CODE", "BACKEND_STATUS"]
    assert lines[1].split()[:5] == ["1", "s1", "True", "5", "0"]
    assert len(lines) == 2

    lines = _ok(xrt("objects", "list", "User")).out.splitlines()
    assert lines[0].split() == ["ID", "EMAIL", "SITE", "BACKEND_CODE", "BACKEND_STATUS"]
    assert lines[1].split()[:3] == ["1", "a@example.org", "1"]


def test_list_empty(xrt: Cli) -> None:
    assert _ok(xrt("objects", "list", "--json", "Site")).json() == []


# --- update -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_update_json_prints_the_changed_object(xrt: Cli, project: Project) -> None:
    before = _ok(xrt("objects", "show", "--json", "Site", "1")).json()
    after = _ok(
        xrt("objects", "update", "--json", "Site", "1", "name=renamed", "quota=null", "enabled=no")
    ).json()

    assert set(after) == SITE_FIELDS
    assert (after["name"], after["quota"], after["enabled"]) == ("renamed", None, False)
    assert after["updated"] > before["updated"]
    unchanged = SITE_FIELDS - {"name", "quota", "enabled", "updated"}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert _ok(xrt("objects", "show", "--json", "Site", "1")).json() == after


@pytest.mark.usefixtures("seeded")
def test_update_link_by_id(xrt: Cli, project: Project) -> None:
    _ok(xrt("objects", "create", "Site", "name=s2"))
    user = _ok(xrt("objects", "update", "--json", "User", "1", "site=2")).json()
    assert user["site"] == 2
    acc = xos_runtime.connect(project.url)
    try:
        assert acc.User.objects.get(id=1).site.name == "s2"
        assert len(acc.Site.objects.get(id=1).users.all()) == 0
    finally:
        acc.close()


def test_update_sub_model_through_its_own_and_its_parent_model(xrt: Cli) -> None:
    _ok(xrt("objects", "create", "VSG", "name=v1", "vlan=3"))
    _ok(xrt("objects", "update", "VSG", "1", "vlan=4"))
    _ok(xrt("objects", "update", "Service", "1", "name=v2"))
    (vsg,) = _ok(xrt("objects", "list", "--json", "VSG")).json()
    assert (vsg["name"], vsg["vlan"]) == ("v2", 4)


@pytest.mark.usefixtures("seeded")
def test_update_human(xrt: Cli) -> None:
    lines = _ok(xrt("objects", "update", "Site", "1", "quota=9")).out.splitlines()
    assert lines[0] == "Site 1"
    assert dict(line.split(None, 1) for line in lines[1:])["quota"] == "9"


# --- delete (soft, with cascade) --------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_delete_is_soft_and_cascades_to_the_user(xrt: Cli, project: Project) -> None:
    _ok(xrt("objects", "create", "Site", "name=s2"))

    result = _ok(xrt("objects", "delete", "Site", "1"))
    assert result.out == "Site 1 deleted\n"

    assert [r["name"] for r in _ok(xrt("objects", "list", "--json", "Site")).json()] == ["s2"]
    assert _ok(xrt("objects", "list", "--json", "User")).json() == []

    snap = store_snapshot(project.url)
    assert [(r["id"], r["deleted"]) for r in snap["Site"]["deleted"]] == [(1, True)]
    assert [(r["id"], r["deleted"]) for r in snap["User"]["deleted"]] == [(1, True)]
    assert [r["name"] for r in snap["Site"]["live"]] == ["s2"]
    assert snap["User"]["live"] == []

    shown = xrt("objects", "show", "Site", "1")
    assert (shown.code, shown.err) == (2, "xos-runtime: error: Site id 1 does not exist\n")


@pytest.mark.usefixtures("seeded")
def test_delete_json_prints_the_deleted_object(xrt: Cli) -> None:
    obj = _ok(xrt("objects", "delete", "--json", "User", "1")).json()
    assert set(obj) == USER_FIELDS
    assert (obj["id"], obj["deleted"], obj["site"]) == (1, True, 1)
    assert [s["name"] for s in _ok(xrt("objects", "list", "--json", "Site")).json()] == ["s1"]


def test_delete_sub_model_through_parent(xrt: Cli, project: Project) -> None:
    _ok(xrt("objects", "create", "VSG", "name=v1", "vlan=3"))
    assert _ok(xrt("objects", "delete", "Service", "1")).out == "Service 1 deleted\n"
    assert _ok(xrt("objects", "list", "--json", "VSG")).json() == []
    snap = store_snapshot(project.url)
    assert [(r["id"], r["vlan"]) for r in snap["VSG"]["deleted"]] == [(1, 3)]


def test_delete_of_write_protected_object_says_so(xrt: Cli) -> None:
    _ok(xrt("objects", "create", "Site", "name=kept", "write_protect=true"))
    assert _ok(xrt("objects", "delete", "Site", "1")).out == (
        "Site 1 not deleted (write_protect is set)\n"
    )
    assert [s["name"] for s in _ok(xrt("objects", "list", "--json", "Site")).json()] == ["kept"]


# --- bad input: exit 2, one line on stderr, nothing written ------------------------------------

LONG = "x" * 65
BAD_INPUT = [
    (
        ("create", "Nope", "a=1"),
        "no model named 'Nope'; known models: Site, User, Service, VSG",
    ),
    (
        ("list", "Nope"),
        "no model named 'Nope'; known models: Site, User, Service, VSG",
    ),
    (
        ("create", "Site", "name=x", "bogus=1"),
        "Site has no field 'bogus'; fields: name, enabled, quota",
    ),
    (
        ("create", "Site", "name=x", "id=7"),
        "Site has no field 'id'; fields: name, enabled, quota",
    ),
    (
        ("list", "Site", "bogus=1"),
        "Site has no field 'bogus'; fields: name, enabled, quota",
    ),
    (
        ("create", "Site", "name=x", "quota=abc"),
        "Site.quota: expected an integer (int32), got 'abc'",
    ),
    (
        ("create", "Site", "name=x", "quota=1.5"),
        "Site.quota: expected an integer (int32), got '1.5'",
    ),
    (
        ("create", "Site", "name=x", "quota=2147483648"),
        "Site.quota: 2147483648 is out of range for int32",
    ),
    (
        ("create", "Site", "name=x", "enabled=maybe"),
        "Site.enabled: expected true or false, got 'maybe'",
    ),
    (
        ("create", "Site", f"name={LONG}"),
        "Site.name: 65 characters is longer than max_length 64",
    ),
    (("create", "Site", "quota=1"), "Site.name: a value is required"),
    (("create", "Site", "name=null"), "Site.name: a value is required"),
    (("create", "User", "email=b@example.org"), "User.site: a Site is required"),
    (
        ("create", "User", "email=b@example.org", "site=999"),
        "User.site: Site id 999 does not exist",
    ),
    (
        ("create", "User", "email=b@example.org", "site=first"),
        "User.site: expected a Site id, got 'first'",
    ),
    (("create", "Site", "name"), "Site: expected field=value, got 'name'"),
    (("create", "VSG", "name=v", "vlan=abc"), "VSG.vlan: expected an integer (int32), got 'abc'"),
    (
        ("create", "--json", "Site", "name=x", "quota=abc"),
        "Site.quota: expected an integer (int32), got 'abc'",
    ),
    (("show", "--json", "Site", "99"), "Site id 99 does not exist"),
    (("show", "Site", "99"), "Site id 99 does not exist"),
    (("update", "Site", "99", "name=z"), "Site id 99 does not exist"),
    (("delete", "Site", "99"), "Site id 99 does not exist"),
    (("delete", "User", "99"), "User id 99 does not exist"),
    (
        ("update", "Site", "1", "name=renamed", "quota=abc"),
        "Site.quota: expected an integer (int32), got 'abc'",
    ),
    (
        ("update", "Site", "1", "quota=6", f"name={LONG}"),
        "Site.name: 65 characters is longer than max_length 64",
    ),
    (("update", "Site", "1", "name=null"), "Site.name: a value is required (got None)"),
    (("update", "User", "1", "site=999"), "User.site: Site id 999 does not exist"),
    (("update", "User", "1", "site=null"), "User.site: a Site is required"),
    (("update", "Site", "1", "quota"), "Site: expected field=value, got 'quota'"),
    (
        ("update", "Site", "1", "leaf_model_name=User"),
        "Site.leaf_model_name is kept by the runtime and cannot be set here",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT, ids=[" ".join(a) for a, _m in BAD_INPUT])
def test_bad_input_is_refused_and_nothing_is_written(
    cli: Cli, shared_seeded: tuple[Project, Snapshot], argv: tuple[str, ...], message: str
) -> None:
    project, before = shared_seeded
    result = cli("objects", *argv, "-C", project.config)
    assert result.code == 2
    assert result.out == ""
    assert result.err == f"xos-runtime: error: {message}\n"
    assert store_snapshot(project.url) == before


@pytest.mark.usefixtures("seeded")
def test_non_integer_id_is_a_usage_error(xrt: Cli, project: Project) -> None:
    before = store_snapshot(project.url)
    result = xrt("objects", "delete", "Site", "one")
    assert result.code == 2
    assert "argument ID: invalid int value: 'one'" in result.err
    assert store_snapshot(project.url) == before


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("config", "message"),
    [
        (config_text("bogus_key: 1\n"), "{file}: bogus_key: unknown key ("),
        (
            config_text("sync: {backoff: {initail: 1}}\n"),
            "{file}: sync.backoff.initail: unknown key; did you mean 'initial'?",
        ),
        ("name: clitest\nmodels_dir: [models\n", "{file}:"),
        (None, "{file}: cannot read configuration file: No such file or directory"),
    ],
    ids=["unknown key", "nested unknown key", "bad YAML", "missing file"],
)
def test_bad_config_file_is_refused_and_nothing_is_written(
    cli: Cli, project: Project, config: str | None, message: str
) -> None:
    """A bad config next to the good one (same relative store URL) writes nothing."""
    bad = project.root / "bad.yaml"
    if config is not None:
        bad.write_text(config)
    before = store_snapshot(project.url)

    result = cli("objects", "create", "Site", "name=never", "-C", bad)

    assert result.code == 2
    assert result.out == ""
    assert len(result.err.splitlines()) == 1, result.err
    assert result.err.startswith("xos-runtime: error: " + message.format(file=bad))
    assert store_snapshot(project.url) == before


# --- where -C goes ------------------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "placement",
    ["objects -C FILE list", "objects list -C FILE", "env", "env overridden by objects -C"],
)
def test_config_option_placement(
    cli: Cli, project: Project, monkeypatch: pytest.MonkeyPatch, placement: str
) -> None:
    """`objects -C FILE ACTION` (contract section 7), `objects ACTION -C FILE`, or the env var."""
    cfg = str(project.config)
    argv = {
        "objects -C FILE list": ["objects", "-C", cfg, "list", "--json", "Site"],
        "objects list -C FILE": ["objects", "list", "-C", cfg, "--json", "Site"],
        "env": ["objects", "list", "--json", "Site"],
        "env overridden by objects -C": ["objects", "-C", cfg, "list", "--json", "Site"],
    }[placement]
    if placement.startswith("env"):
        env_file = cfg if placement == "env" else str(project.root / "missing.yaml")
        monkeypatch.setenv("XOS_CONFIG_FILE", env_file)
    result = cli(*argv)
    assert result.code == 0, result.err
    assert [r["name"] for r in result.json()] == ["s1"]


# --- bookkeeping fields through `update` ------------------------------------------------------


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("pair", ["deleted=true", "enacted=5", "backend_code=1", "updated=1"])
def test_update_refuses_fields_the_runtime_keeps(xrt: Cli, project: Project, pair: str) -> None:
    before = store_snapshot(project.url)
    result = xrt("objects", "update", "Site", "1", pair)
    assert result.code == 2
    assert "is kept by the runtime and cannot be set here" in result.err
    assert store_snapshot(project.url) == before


@pytest.mark.usefixtures("seeded")
def test_update_sets_the_flags_an_operator_owns(xrt: Cli, project: Project) -> None:
    xrt("objects", "update", "Site", "1", "no_sync=true", "write_protect=true")
    snap = store_snapshot(project.url)
    site = next(row for row in snap["Site"]["live"] if row["id"] == 1)
    assert site["no_sync"] is True and site["write_protect"] is True
