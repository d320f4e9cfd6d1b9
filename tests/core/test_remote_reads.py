"""The engines' reads over a core: the change feed as a subscription, rows by key, policy
work, each the same as the local accessor's on the same store."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from xos_runtime.store import ModelAccessor, open_store
from xos_runtime.store.remote import RemoteAccessor, open_remote
from xos_runtime.store.remote import rows as remote_rows
from xos_runtime.store.remote.rows import MAX_ROW_KEYS, ROWS_PATH

from .conftest import PASSWORDS, Core, Project

#: A sub-model of `Site`, with a link of its own.
SUB_XPROTO = """\
option app_label = "coretest";

message BigSite (Site) {
    optional string region = 1 [max_length = 32];
    optional manytoone partner->Site:partners = 2;
}
"""

SITES = "/xosapi/v1/coretest/sites"
SLICES = "/xosapi/v1/coretest/slices"
BIGSITES = "/xosapi/v1/coretest/bigsites"
WIDGETS = "/xosapi/v1/core/widgets"


def _project(root: Path) -> Project:
    project = Project(root)
    (root / "models" / "bigsite.xproto").write_text(SUB_XPROTO)
    project.add_users()
    return project


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _remote(core: Core, user: str = "vsg") -> RemoteAccessor:
    return open_remote(core.url, username=user, password=PASSWORDS[user])


def _created(core: Core, path: str, body: dict[str, Any], user: str = "alice") -> dict[str, Any]:
    r = core.call("POST", path, json=body, user=user)
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    server = Core(_project(tmp_path_factory.mktemp("reads") / "proj"))
    yield server
    server.stop()
    assert "internal error" not in server.stderr(), server.stderr()


@pytest.fixture()
def local(served: Core) -> Iterator[ModelAccessor]:
    acc = open_store(served.project.url)
    yield acc
    acc.close()


@pytest.fixture()
def remote(served: Core) -> Iterator[RemoteAccessor]:
    acc = _remote(served)
    yield acc
    acc.close()


def _changes_until(sub: Any, wanted: set[str], timeout: float = 15.0) -> set[str]:
    """What the subscription reported until `wanted` was among it."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= seen:
        left = deadline - time.monotonic()
        assert left > 0, f"the subscription reported {seen}, not {wanted}"
        seen |= sub.wait(left) or set()
    return seen


# -- the change feed as a subscription ----------------------------------------------------------


def test_a_change_through_the_core_wakes_the_subscription(served: Core) -> None:
    acc = _remote(served)
    sub = acc.subscribe()
    try:
        assert sub.wait(0.3) is None  # nothing changed
        _created(served, WIDGETS, {"note": "wake"})  # another client, through the core
        start = time.monotonic()
        assert "Widget" in _changes_until(sub, {"Widget"})
        assert time.monotonic() - start < 5
        sub.post(["Slice"])  # as a local subscription: a change posted wakes it too
        assert sub.wait(1) == {"Slice"}
        # the thread is in its next poll, waiting at the core: close() does not wait for it
        start = time.monotonic()
        sub.close()
        assert time.monotonic() - start < 1.5
        assert sub.wait(5) is None  # closed: at once
    finally:
        sub.close()
        acc.close()


def test_the_subscription_carries_on_across_a_restart_of_the_core(tmp_path: Path) -> None:
    project = _project(tmp_path / "proj")
    port = _free_port()
    core = Core(project, port=port)
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="INFO")
    acc = _remote(core)
    sub = acc.subscribe()
    try:
        everything = {m.name for m in acc.models}
        _created(core, SITES, {"name": "before"})
        assert "Site" in _changes_until(sub, {"Site"})
        core.stop()
        deadline = time.monotonic() + 30
        while not any("does not answer" in m for m in messages):
            assert time.monotonic() < deadline, messages
            assert sub.wait(0.1) is None
        core = Core(project, port=port)
        # a new epoch: anything may have changed while it was away
        assert _changes_until(sub, everything, timeout=30) == everything
        _created(core, WIDGETS, {"note": "after"})
        assert "Widget" in _changes_until(sub, {"Widget"})
    finally:
        sub.close()
        acc.close()
        core.stop()
        logger.remove(sink)
    feed = [m for m in messages if "change feed" in m]
    assert sum("does not answer" in m for m in feed) == 1, feed  # said once, not per try
    assert sum("answers again" in m for m in feed) == 1, feed


# -- rows by key --------------------------------------------------------------------------------


def _some_rows(core: Core) -> list[tuple[str, int]]:
    """Keys of live, deleted and sub-model rows (and one that does not exist)."""
    site = _created(core, SITES, {"name": "rows", "quota": 3, "ratio": 0.5})
    big = _created(core, BIGSITES, {"name": "big", "region": "eu", "partner_id": site["id"]})
    live = _created(core, SLICES, {"name": "a", "site_id": site["id"], "backup_id": big["id"]})
    gone = _created(core, SLICES, {"name": "b", "site_id": big["id"]})
    assert core.call("DELETE", f"{SLICES}/{gone['id']}").status_code == 204
    return [
        ("Site", site["id"]),
        ("Site", big["id"]),
        ("Slice", live["id"]),
        ("Slice", gone["id"]),
        ("Site", 999_999),
    ]


def test_load_rows_are_the_local_accessors(
    served: Core, local: ModelAccessor, remote: RemoteAccessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = _some_rows(served)
    mine = local.load_rows(keys)
    assert len(mine) == 4 and ("Site", 999_999) not in mine
    assert remote.load_rows(keys) == mine
    big = remote.load_rows([keys[1]])[keys[1]]
    assert big["region"] == "eu" and big["partner_id"] == keys[0][1]  # sub-model columns
    assert remote.load_rows(keys)[keys[3]]["deleted"] is True
    columns = ("id", "deleted", "updated", "enacted", "site_id")
    slices = [k for k in keys if k[0] == "Slice"]
    assert remote.load_rows(slices, columns=columns) == local.load_rows(slices, columns=columns)
    assert remote.load_rows([]) == {}
    # a larger set than one request holds is sent in several
    monkeypatch.setattr(remote_rows, "MAX_ROW_KEYS", 2)
    assert remote.load_rows(keys) == mine


def test_the_rows_route_is_for_synchronizers_and_checks_its_body(served: Core) -> None:
    r = served.call("POST", ROWS_PATH, json={"keys": [["Site", 1]]}, user="alice")
    assert r.status_code == 403 and r.json()["error"]
    bad: list[tuple[Any, str | None]] = [
        ([], None),
        ({"keys": "Site"}, "keys"),
        ({}, "keys"),
        ({"keys": [["Site"]]}, "keys"),
        ({"keys": [["Nope", 1]]}, "keys"),
        ({"keys": [["Site", True]]}, "keys"),
        ({"keys": [["Site", 0]]}, "keys"),
        ({"keys": [["Site", 2**40]]}, "keys"),
        ({"keys": [["Site", 1]] * (MAX_ROW_KEYS + 1)}, "keys"),
        ({"keys": [["Site", 1]], "columns": "id"}, "columns"),
        ({"keys": [["Site", 1]], "columns": ["name"]}, "columns"),
        ({"keys": [["Site", 1]], "columns": ["id", "nope"]}, "columns"),
        ({"keys": [["Site", 1]], "extra": 1}, "extra"),
    ]
    for body, field in bad:
        r = served.call("POST", ROWS_PATH, json=body, user="vsg")
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"] and r.json()["field"] == field, (body, r.text)
    r = served.call("POST", ROWS_PATH, data=b"{", user="vsg")
    assert r.status_code == 400


# -- policy work --------------------------------------------------------------------------------


def _work(objects: list[Any], others: list[tuple[str, int]]) -> tuple[list[Any], list[Any]]:
    return (
        sorted(((type(o).__name__, o.to_dict()) for o in objects), key=lambda t: t[1]["id"]),
        sorted(others),
    )


def test_policy_work_is_the_local_accessors(
    served: Core, local: ModelAccessor, remote: RemoteAccessor
) -> None:
    keys = _some_rows(served)
    # one site policed: no longer policy work
    done = _created(served, SITES, {"name": "policed"})
    r = served.call("PUT", f"{SITES}/{done['id']}", json={"policed": done["updated"]}, user="vsg")
    assert r.status_code == 200, r.text
    # one site deleted (with its slices): work for handle_delete
    doomed = _created(served, SITES, {"name": "doomed"})
    _created(served, SLICES, {"name": "d", "site_id": doomed["id"]})
    assert served.call("DELETE", f"{SITES}/{doomed['id']}").status_code == 204
    big_id = keys[1][1]
    cases: list[tuple[list[str], dict[str, set[int]] | None]] = [
        (["Site"], None),
        (["BigSite"], None),
        (["Site", "Slice"], None),
        (["BigSite", "Slice", "Site"], None),
        (["Site", "Slice"], {"Site": {big_id, doomed["id"]}, "Slice": set()}),
    ]
    for names, only in cases:
        mine = _work(*local.fetch_policy_work(names, only=only))
        theirs = _work(*remote.fetch_policy_work(names, only=only))
        assert theirs == mine, (names, only)
    objects, _ = remote.fetch_policy_work(["Site"])
    by_id = {o.id: o for o in objects}
    assert type(by_id[big_id]).__name__ == "BigSite" and by_id[big_id].region == "eu"
    assert by_id[doomed["id"]].deleted and done["id"] not in by_id


def test_snapshot_is_a_block_on_both_accessors(
    local: ModelAccessor, remote: RemoteAccessor
) -> None:
    with local.snapshot():
        local.Site.objects.count()
    with remote.snapshot():
        remote.Site.objects.count()


def test_pending_reads_come_by_pages_and_are_the_local_accessors(
    served: Core, local: ModelAccessor, remote: RemoteAccessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The core answers a pending read by pages in id order (`after`, `limit`, `next`); the
    remote accessor reads them all, and finds what the local accessor finds."""
    for i in range(5):
        _created(served, "/xosapi/v1/coretest/sites", {"name": f"paged-{i}"})
    whole = sorted(o.id for o in local.fetch_pending(["Site"]))
    assert len(whole) >= 5
    ids: list[int] = []
    params = "limit=2"
    while True:
        r = served.call("GET", f"/xosapi/v1/coretest/sites/pending?{params}", user="vsg")
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        ids += [o["id"] for o in page["items"]]
        if page["next"] is None:
            break
        assert page["next"] == ids[-1]
        params = f"limit=2&after={page['next']}"
    assert ids == whole
    monkeypatch.setattr("xos_runtime.store.remote.accessor.PENDING_PAGE", 2)
    assert sorted(o.id for o in remote.fetch_pending(["Site"])) == whole
    bad = served.call("GET", "/xosapi/v1/coretest/sites/pending?limit=0", user="vsg")
    assert bad.status_code == 400 and bad.json()["field"] == "limit"
