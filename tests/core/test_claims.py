"""Leases and claims of remote runtimes, held by the core: they expire by lease only."""

from __future__ import annotations

import time
from typing import Any

from .conftest import Core

SITES = "/xosapi/v1/coretest/sites"
LEASES = "/xosapi/v1/leases"
CLAIMS = "/xosapi/v1/claims"


def _lease(core: Core, ttl: float = 30.0) -> str:
    r = core.call("POST", LEASES, user="vsg", json={"name": "remote", "ttl": ttl})
    assert r.status_code == 201, r.text
    owner: str = r.json()["owner"]
    return owner


def _claim(core: Core, owner: str, keys: list[Any], **extra: Any) -> list[list[Any]]:
    body = {"owner": owner, "kind": "sync", "keys": keys, **extra}
    r = core.call("POST", CLAIMS, user="vsg", json=body)
    assert r.status_code == 200, r.text
    claimed: list[list[Any]] = r.json()["claimed"]
    return claimed


def test_two_remote_runtimes_never_hold_one_object(core: Core) -> None:
    sid = core.call("POST", SITES, json={"name": "claimed"}).json()["id"]
    first, second = _lease(core), _lease(core)
    assert _claim(core, first, [["Site", sid]], pending="sync") == [["Site", sid]]
    assert _claim(core, second, [["Site", sid]], pending="sync") == []
    r = core.call("POST", f"{CLAIMS}/release", user="vsg", json={
        "owner": first, "kind": "sync", "keys": [["Site", sid]],
    })  # fmt: skip
    assert r.status_code == 200
    assert _claim(core, second, [["Site", sid]]) == [["Site", sid]]
    # a claim of another kind (policies) is separate, as in XOS
    r = core.call("POST", CLAIMS, user="vsg", json={
        "owner": first, "kind": "policy", "keys": [["Site", sid]],
    })  # fmt: skip
    assert r.json()["claimed"] == [["Site", sid]]
    for owner in (first, second):
        assert core.call("DELETE", f"{LEASES}/{owner}", user="vsg").status_code == 204


def test_claims_with_pending_skip_what_is_done(core: Core) -> None:
    site = core.call("POST", SITES, json={"name": "done"}).json()
    core.call("PUT", f"{SITES}/{site['id']}", user="vsg", json={"enacted": site["updated"]})
    owner = _lease(core)
    assert _claim(core, owner, [["Site", site["id"]]], pending="sync") == []
    assert _claim(core, owner, [["Site", site["id"]]], pending="policy") == [["Site", site["id"]]]
    core.call("DELETE", f"{LEASES}/{owner}", user="vsg")


def test_a_remote_lease_expires_by_its_ttl_only(core: Core) -> None:
    sid = core.call("POST", SITES, json={"name": "expiring"}).json()["id"]
    short, other = _lease(core, ttl=2.5), _lease(core)
    assert _claim(core, short, [["Site", sid]]) == [["Site", sid]]
    r = core.call("POST", f"{LEASES}/{other}/reap", user="vsg", json={"kinds": ["sync"]})
    assert r.json()["taken"] == 0 and r.json()["count"] >= 2
    assert _claim(core, other, [["Site", sid]]) == []  # alive: its claim holds
    deadline = time.monotonic() + 15
    while True:  # nobody renews the short lease: once it runs out, its claims are free
        r = core.call("POST", f"{LEASES}/{other}/reap", user="vsg", json={"kinds": ["sync"]})
        if r.json()["taken"]:
            break
        assert time.monotonic() < deadline, "the lapsed lease's claims were never taken over"
        time.sleep(0.1)
    assert _claim(core, other, [["Site", sid]]) == [["Site", sid]]
    # the lapsed runtime renews again: it comes back, without its old claims
    assert core.call("PUT", f"{LEASES}/{short}", user="vsg").status_code == 200
    assert _claim(core, short, [["Site", sid]]) == []
    for owner in (short, other):
        assert core.call("DELETE", f"{LEASES}/{owner}", user="vsg").status_code == 204


def test_leases_and_claims_are_for_synchronizers(core: Core) -> None:
    assert core.call("POST", LEASES, json={"name": "x"}).status_code == 403
    owner = _lease(core)
    r = core.call("POST", CLAIMS, json={"owner": owner, "kind": "sync", "keys": []})
    assert r.status_code == 403
    assert core.call("PUT", f"{LEASES}/nobody", user="vsg").status_code == 404
    for body, field in [
        ({"owner": owner, "kind": "sync", "keys": [["Nope", 1]]}, "keys"),
        ({"owner": owner, "kind": "sync", "keys": [["Site", 0]]}, "keys"),
        ({"owner": owner, "kind": "Bad Kind", "keys": []}, "kind"),
        ({"owner": owner, "kind": "sync", "keys": [], "pending": "later"}, "pending"),
        ({"owner": "nobody", "kind": "sync", "keys": []}, "owner"),
    ]:
        r = core.call("POST", CLAIMS, user="vsg", json=body)
        assert r.status_code in (400, 404) and r.json()["field"] == field, r.text
    r = core.call("POST", LEASES, user="vsg", json={"ttl": 0})
    assert r.status_code == 400 and r.json()["field"] == "ttl"
    assert core.call("DELETE", f"{LEASES}/{owner}", user="vsg").status_code == 204


OUTCOMES = "/xosapi/v1/outcomes"


def test_an_outcome_batch_claims_releases_and_stores_at_once(core: Core) -> None:
    """The batch a remote engine sends: outcomes of what it finished, the claim of its next
    objects (re-read in the same transaction), the release of the finished ones."""
    done = core.call("POST", SITES, json={"name": "batch-done"}).json()
    nxt = core.call("POST", SITES, json={"name": "batch-next"}).json()
    owner, other = _lease(core), _lease(core)
    assert _claim(core, owner, [["Site", done["id"]]]) == [["Site", done["id"]]]
    body = {
        "owner": owner,
        "kind": "sync",
        "updates": [
            {
                "model": "Site",
                "id": done["id"],
                "fields": {"enacted": done["updated"], "backend_code": 1},
            },
        ],
        "claim": {
            "keys": [["Site", nxt["id"]]],
            "pending": "sync",
            "columns": ["id", "enacted", "updated"],
        },
        "release": [["Site", done["id"]]],
    }
    r = core.call("POST", OUTCOMES, user="vsg", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["claimed"] == [["Site", nxt["id"]]]
    assert answer["rows"] == [
        {"model": "Site", "id": nxt["id"],
         "row": {"id": nxt["id"], "enacted": None, "updated": nxt["updated"]}}
    ]  # fmt: skip
    stored = core.call("GET", f"{SITES}/{done['id']}").json()
    assert stored["enacted"] == done["updated"] and stored["backend_code"] == 1
    # released: the other runtime may take the done one; the next one is held
    assert _claim(core, other, [["Site", done["id"]], ["Site", nxt["id"]]]) == [
        ["Site", done["id"]]
    ]
    # sent again (an answer lost): adopt_own gets the claim it already holds
    body["claim"]["adopt_own"] = True  # type: ignore[index]
    body["release"] = []
    again = core.call("POST", OUTCOMES, user="vsg", json=body).json()
    assert again["claimed"] == [["Site", nxt["id"]]]
    for o in (owner, other):
        core.call("DELETE", f"{LEASES}/{o}", user="vsg")


def test_a_refused_outcome_batch_writes_nothing(core: Core) -> None:
    site = core.call("POST", SITES, json={"name": "batch-refused"}).json()
    owner = _lease(core)
    update = {"model": "Site", "id": site["id"], "fields": {"backend_status": "written?"}}
    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"claim": {"keys": [["Site", site["id"]]]}}, 400, "owner"),
        ({"owner": owner, "kind": "sync", "claim": {"keys": "x"}}, 400, "claim.keys"),
        (
            {"owner": owner, "kind": "sync", "claim": {"keys": [], "pending": "soon"}},
            400,
            "claim.pending",
        ),
        (
            {
                "owner": owner,
                "kind": "sync",
                "claim": {"keys": [["Site", site["id"]]], "columns": ["name", "id"]},
            },
            400,
            "claim.columns",
        ),
        (
            {
                "owner": owner,
                "kind": "sync",
                "claim": {"keys": [["Site", site["id"]]], "columns": ["id", "nope"]},
            },
            400,
            "claim.columns",
        ),
        ({"owner": owner, "kind": "sync", "release": [["Nope", 1]]}, 400, "release"),
        ({"owner": owner, "kind": "Bad Kind"}, 400, "kind"),
        ({"owner": "remote:x:000000000000", "kind": "sync"}, 404, "owner"),
        (
            {"restore": [{"model": "Site", "id": site["id"], "expected": 3, "text": "t"}]},
            400,
            "restore[0].expected",
        ),
    ]
    for extra, status, field in bad:
        r = core.call("POST", OUTCOMES, user="vsg", json={"updates": [update], **extra})
        assert r.status_code == status, (extra, r.text)
        assert r.json()["field"] == field, (extra, r.json())
    assert core.call("GET", f"{SITES}/{site['id']}").json()["backend_status"] != "written?"
    r = core.call("POST", OUTCOMES, user="alice", json={"updates": [update]})
    assert r.status_code == 403
    core.call("DELETE", f"{LEASES}/{owner}", user="vsg")


def test_held_claims_and_error_counts_for_synchronizers(core: Core) -> None:
    sid = core.call("POST", SITES, json={"name": "held"}).json()["id"]
    owner = _lease(core)
    _claim(core, owner, [["Site", sid]])
    held = core.call("GET", CLAIMS, user="vsg").json()["held"]
    mine = [h for h in held if h["owner"] == owner]
    assert mine == [
        {"owner": owner, "process": mine[0]["process"], "kind": "sync", "count": 1,
         "abandoned": 0}
    ], held  # fmt: skip
    assert mine[0]["process"]["name"] == "remote"
    assert core.call("GET", CLAIMS, user="alice").status_code == 403
    count = core.call("GET", "/xosapi/v1/codes/2", user="vsg")
    assert count.status_code == 200 and isinstance(count.json()["count"], int)
    assert core.call("GET", "/xosapi/v1/codes/x", user="vsg").status_code == 404
    core.call("DELETE", f"{LEASES}/{owner}", user="vsg")


def test_a_runtime_comes_back_under_its_own_owner_only(core: Core) -> None:
    """After a core restart a runtime registers again with the owner it had (its claims
    stay its own); the owner names its user, and no other user may take it."""
    from xos_runtime.core.leases import owner_for, user_of_owner

    owner = _lease(core)
    assert user_of_owner(owner) == "vsg" and owner.startswith("remote:vsg@")
    again = core.call("POST", LEASES, user="vsg", json={"name": "remote", "owner": owner})
    assert again.status_code == 201 and again.json()["owner"] == owner
    # an IPv6 client's address makes a valid owner too
    assert user_of_owner(owner_for("a@b", "::1")) == "a@b"
    taken = core.call("POST", LEASES, user="vsg", json={"owner": owner_for("other", "::1")})
    assert taken.status_code == 403 and taken.json()["field"] == "owner"
    bad = core.call("POST", LEASES, user="vsg", json={"owner": "remote:nope"})
    assert bad.status_code == 400 and bad.json()["field"] == "owner"
    core.call("DELETE", f"{LEASES}/{owner}", user="vsg")


def test_the_core_forgets_leases_left_behind(tmp_path: Any) -> None:
    """A runtime that went away without ending its lease: after ten times its TTL the core
    no longer keeps it in memory (its row expired long ago); it may come back under it."""
    from xos_runtime.core.errors import ApiError
    from xos_runtime.core.leases import RemoteLeases
    from xos_runtime.core.users import User
    from xos_runtime.store import open_store

    now = [1000.0]
    accessor = open_store(f"sqlite:///{tmp_path}/leases.db", models_optional=True)
    try:
        leases = RemoteLeases(accessor, clock=lambda: now[0])
        vsg = User("vsg", "synchronizer")
        gone = leases.register(vsg, "10.0.0.1", {"ttl": 2.0})["owner"]
        kept = leases.register(vsg, "10.0.0.2", {"ttl": 60.0})["owner"]
        now[0] += 21.0
        leases.renew(vsg, kept)
        leases.register(vsg, "10.0.0.3", {"ttl": 2.0})  # registering forgets lapsed ones
        assert leases.get(vsg, kept).owner == kept
        try:
            leases.get(vsg, gone)
        except ApiError as exc:
            assert exc.status == 404
        else:
            raise AssertionError("a lease lapsed ten times over is still kept")
        assert leases.register(vsg, "10.0.0.1", {"ttl": 2.0, "owner": gone})["owner"] == gone
    finally:
        accessor.close()
