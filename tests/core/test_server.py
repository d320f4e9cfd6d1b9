"""`xos-runtime core serve` (issue 14, items 1 and 3): a real server process on loopback."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from cli.conftest import BOOKKEEPING

from .conftest import Core, Project, snapshot

SITES = "/xosapi/v1/coretest/sites"
SLICES = "/xosapi/v1/coretest/slices"


def _site(core: Core, name: str, **fields: Any) -> dict[str, Any]:
    r = core.call("POST", SITES, json={"name": name, **fields})
    assert r.status_code == 201, r.text
    found: dict[str, Any] = r.json()
    return found


def test_health_and_version_need_no_credentials(core: Core) -> None:
    assert core.call("GET", "/healthz", user=None).json() == {"status": "ok"}
    version = core.call("GET", "/xosapi/v1/version", user=None).json()
    assert version["version"] == "4.0.4" and version["xos_runtime"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", SITES),
        ("POST", SITES),
        ("GET", f"{SITES}/1"),
        ("DELETE", f"{SITES}/1"),
        ("GET", "/openapi.json"),
    ],
)
def test_no_credentials_is_401_with_a_basic_challenge(core: Core, method: str, path: str) -> None:
    r = core.call(method, path, user=None, json={"name": "x"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert r.json()["error"]


def test_wrong_password_and_wrong_token_are_401(core: Core) -> None:
    before = snapshot(core.project)
    r = core.call("POST", SITES, user=None, auth=("alice", "nope"), json={"name": "x"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    r = core.call("GET", SITES, user=None, headers={"Authorization": "Bearer xrt_wrong"})
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
    assert snapshot(core.project) == before


def test_a_bearer_token_works(core: Core) -> None:
    token = core.project.token("alice")
    r = core.call("GET", SITES, user=None, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and "items" in r.json()


def test_crud_round_trip_returns_every_field(core: Core) -> None:
    site = _site(core, "crud", quota=5)
    assert set(site) == BOOKKEEPING | {"name", "enabled", "quota", "ratio"}
    assert site["enabled"] is True and site["quota"] == 5 and site["deleted"] is False
    sid = site["id"]
    r = core.call("POST", SLICES, json={"name": "sl", "site_id": sid})
    assert r.status_code == 201, r.text
    slice_ = r.json()
    assert set(slice_) == BOOKKEEPING | {"name", "site_id", "backup_id"}
    assert slice_["site_id"] == sid and slice_["backup_id"] is None

    assert core.call("GET", f"{SITES}/{sid}").json() == site
    r = core.call("PUT", f"{SITES}/{sid}", json={"quota": 7, "no_sync": True})
    assert r.status_code == 200, r.text
    updated = r.json()
    assert updated["quota"] == 7 and updated["no_sync"] is True and updated["name"] == "crud"
    assert updated["updated"] > site["updated"]  # a user's data change: pending again
    assert core.call("GET", f"{SITES}/{sid}").json() == updated

    r = core.call("DELETE", f"{SITES}/{sid}")
    assert r.status_code == 204
    assert core.call("GET", f"{SITES}/{sid}").status_code == 404
    # soft delete with cascade: the slice whose required link points at the site goes too
    assert core.call("GET", f"{SLICES}/{slice_['id']}").status_code == 404
    stored = snapshot(core.project)
    assert sid in [row["id"] for row in stored["Site"]["deleted"]]
    assert slice_["id"] in [row["id"] for row in stored["Slice"]["deleted"]]


def test_a_model_without_app_label_is_under_core(core: Core) -> None:
    r = core.call("POST", "/xosapi/v1/core/widgets", json={"note": "n", "size": 2**64 - 1})
    assert r.status_code == 201, r.text
    assert r.json()["size"] == 2**64 - 1
    assert core.call("GET", "/xosapi/v1/coretest/widgets").status_code == 404


def test_filters_and_paging(core: Core) -> None:
    ids = [_site(core, f"page{i}", quota=i % 2)["id"] for i in range(5)]
    r = core.call("GET", SITES, params={"quota": "1", "enabled": "true"})
    assert [o["id"] for o in r.json()["items"] if o["id"] in ids] == [ids[1], ids[3]]
    everything = [o["id"] for o in core.call("GET", SITES).json()["items"]]
    assert everything == sorted(everything) and set(ids) <= set(everything)
    pages = [
        [
            o["id"]
            for o in core.call("GET", SITES, params={"page": n, "page_size": 2}).json()["items"]
        ]
        for n in (1, 2, 3, 99)
    ]
    assert pages[0] == everything[:2] and pages[1] == everything[2:4]
    assert pages[2] == everything[4:6] and pages[3] == []
    r = core.call("GET", SITES, params={"colour": "red"})
    assert r.status_code == 400 and r.json()["field"] == "colour"
    r = core.call("GET", SITES, params={"quota": "many"})
    assert r.status_code == 400 and r.json()["field"] == "quota"
    r = core.call("GET", SITES, params={"page": "0"})
    assert r.status_code == 400 and r.json()["field"] == "page"


def test_an_ordinary_user_cannot_write_feedback_fields(core: Core) -> None:
    site = _site(core, "roles")
    before = snapshot(core.project)
    for field, value in [("backend_status", "OK"), ("enacted", 1.0), ("policy_code", 1)]:
        r = core.call("PUT", f"{SITES}/{site['id']}", json={"quota": 1, field: value})
        assert r.status_code == 403, r.text
        assert r.json()["field"] == field and field in r.json()["error"]
    r = core.call("POST", SITES, json={"name": "x", "backend_code": 1})
    assert r.status_code == 403 and r.json()["field"] == "backend_code"
    assert snapshot(core.project) == before  # nothing written, not even the quota


def test_a_synchronizer_writes_feedback_without_making_the_object_pending(core: Core) -> None:
    site = _site(core, "feedback")
    body = {"backend_status": "OK", "backend_code": 1, "enacted": site["updated"]}
    r = core.call("PUT", f"{SITES}/{site['id']}", user="vsg", json=body)
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["backend_status"] == "OK" and after["backend_code"] == 1
    assert after["updated"] == site["updated"]  # feedback alone does not move `updated`


BAD_BODIES: list[tuple[str, Any, int, str | None]] = [
    ("unknown field", {"name": "b", "colour": "red"}, 400, "colour"),
    ("wrong type", {"name": "b", "quota": "many"}, 400, "quota"),
    ("wrong type bool", {"name": "b", "enabled": "yes"}, 400, "enabled"),
    ("int out of range", {"name": "b", "quota": 2**40}, 400, "quota"),
    ("oversize", {"name": "b" * 33}, 400, "name"),
    ("missing required", {"quota": 1}, 400, "name"),
    ("null required", {"name": None}, 400, "name"),
    ("read-only id", {"name": "b", "id": 99}, 400, "id"),
    ("deleted", {"name": "b", "deleted": True}, 400, "deleted"),
    ("NUL in text", {"name": "b\x00"}, 400, "name"),
    ("not an object", ["name", "b"], 400, None),
]


@pytest.mark.parametrize(
    ("body", "status", "field"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES]
)
def test_bad_bodies_are_refused_and_write_nothing(
    core: Core, body: Any, status: int, field: str | None
) -> None:
    site = _site(core, "target")
    before = snapshot(core.project)
    for method, path in [("POST", SITES), ("PUT", f"{SITES}/{site['id']}")]:
        if method == "PUT" and field in ("name",) and body == {"quota": 1}:
            continue  # a PUT names only the fields it changes
        r = core.call(method, path, json=body)
        assert r.status_code == status, (method, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["field"] == field and r.json()["error"]
    assert snapshot(core.project) == before


def test_links_to_missing_objects_are_refused(core: Core) -> None:
    site = _site(core, "linked")
    before = snapshot(core.project)
    for body, field in [
        ({"name": "s", "site_id": 999999}, "site_id"),
        ({"name": "s", "site": site["id"], "backup": 999999}, "backup"),
        ({"name": "s", "site_id": "one"}, "site_id"),
        ({"name": "s", "site_id": True}, "site_id"),
        ({"name": "s"}, "site_id"),
    ]:
        r = core.call("POST", SLICES, json=body)
        assert r.status_code == 400, r.text
        assert r.json()["field"] == field
    assert snapshot(core.project) == before


def test_bodies_that_are_not_json_or_too_large(core: Core) -> None:
    before = snapshot(core.project)
    headers = {"Content-Type": "application/json"}
    for data in [b"{", b"NaN", b'{"name": NaN}', b"\xff\xfe", b"[" * 100000 + b"]" * 100000]:
        r = core.call("POST", SITES, data=data, headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]
    r = core.call("POST", SITES, json={"name": "x" * (2 << 20)})
    assert r.status_code == 413 and r.json()["error"]
    assert snapshot(core.project) == before


def test_unknown_models_and_objects_are_404(core: Core) -> None:
    assert core.call("GET", "/xosapi/v1/coretest/nothings").status_code == 404
    r = core.call("GET", f"{SITES}/424242")
    assert r.status_code == 404 and r.json()["field"] == "id"
    assert core.call("PUT", f"{SITES}/abc", json={}).status_code == 404
    assert core.call("DELETE", f"{SITES}/424242").status_code == 404


def test_write_protected_object_is_not_deleted(core: Core) -> None:
    site = _site(core, "protected", write_protect=True)
    r = core.call("DELETE", f"{SITES}/{site['id']}")
    assert r.status_code == 409 and r.json()["field"] == "write_protect"
    assert core.call("GET", f"{SITES}/{site['id']}").status_code == 200


def test_openapi_describes_every_model(core: Core) -> None:
    doc = core.call("GET", "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in (SITES, f"{SITES}/{{id}}", SLICES, "/xosapi/v1/core/widgets"):
        assert path in doc["paths"]
    create = doc["components"]["schemas"]["SiteCreate"]
    assert create["additionalProperties"] is False and create["required"] == ["name"]
    assert create["properties"]["name"]["maxLength"] == 32


def test_repeated_failures_from_one_client_get_429(tmp_path: Any) -> None:
    project = Project(tmp_path / "proj")
    project.add_users()
    core = Core(project)
    try:
        for _ in range(5):
            assert core.call("GET", SITES, user=None, auth=("alice", "wrong")).status_code == 401
        r = core.call("GET", SITES)  # the right password, but too late
        assert r.status_code == 429 and r.json()["error"] and int(r.headers["Retry-After"]) > 0
        assert core.call("GET", "/healthz", user=None).status_code == 200
    finally:
        core.stop()


def test_the_server_works_on_postgresql(tmp_path: Any, pg_store_url: str) -> None:
    project = Project(tmp_path / "proj")
    project.write_config(endpoint=pg_store_url)
    project.add_users()
    core = Core(project)
    try:
        site = _site(core, "pg", ratio=0.5)
        r = core.call("POST", SLICES, json={"name": "s", "site_id": site["id"]})
        assert r.status_code == 201, r.text
        r = core.call("POST", SITES, json={"name": "n\x00ul"})
        assert r.status_code == 400 and r.json()["field"] == "name"
        assert core.call("DELETE", f"{SITES}/{site['id']}").status_code == 204
        assert core.call("GET", SLICES).json() == {"items": []}
    finally:
        core.stop()


def test_a_synchronizers_engine_saves_as_its_caller_kind(core: Core) -> None:
    site = _site(core, "caller")
    r = core.call(
        "PUT",
        f"{SITES}/{site['id']}",
        user="vsg",
        json={"quota": 3},
        headers={"X-XOS-Caller": "sync"},
    )
    assert r.status_code == 200, r.text
    after = r.json()
    # a sync step's data change: re-triggers policies (changed_by_step), not sync (updated)
    assert after["quota"] == 3 and after["updated"] == site["updated"]
    assert after["changed_by_step"] is not None
    r = core.call(
        "PUT", f"{SITES}/{site['id']}", json={"quota": 4}, headers={"X-XOS-Caller": "sync"}
    )
    assert r.status_code == 403 and r.json()["field"] == "X-XOS-Caller"
    r = core.call(
        "PUT", f"{SITES}/{site['id']}", user="vsg", json={}, headers={"X-XOS-Caller": "me"}
    )
    assert r.status_code == 400 and r.json()["field"] == "X-XOS-Caller"


def _nodelay_of_accepted(sock: socket.socket) -> int:
    """TCP_NODELAY of a connection accepted from `sock` by asyncio, as uvicorn accepts."""
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted = transport.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        await reader.read()  # until the server closes it
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    return seen[0]


def test_the_core_answers_without_nagle_delays() -> None:
    """The core's connections send at once (TCP_NODELAY): with Nagle's algorithm a response's
    body waited for the client's delayed acknowledgement of its headers, 40 ms a request."""
    from xos_runtime.core.server import _bind

    assert _nodelay_of_accepted(_bind("127.0.0.1", 0)) != 0
