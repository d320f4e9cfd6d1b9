"""What remote engines need from a core: pending queries and a change feed to wait on."""

from __future__ import annotations

import threading
import time
from typing import Any

from .conftest import Core, snapshot

SITES = "/xosapi/v1/coretest/sites"


def _ids(core: Core, path: str, **params: str) -> list[int]:
    r = core.call("GET", path, params=params)
    assert r.status_code == 200, r.text
    return [o["id"] for o in r.json()["items"]]


def test_pending_and_deleted_queries_follow_the_stores_rules(core: Core) -> None:
    site = core.call("POST", SITES, json={"name": "pending"}).json()
    sid = site["id"]
    assert sid in _ids(core, f"{SITES}/pending")
    assert sid in _ids(core, f"{SITES}/policy_pending")
    assert sid not in _ids(core, f"{SITES}/pending", deleted="true")

    # a synchronizer reports the sync done: no longer pending for sync, still for policies
    r = core.call("PUT", f"{SITES}/{sid}", user="vsg", json={"enacted": site["updated"]})
    assert r.status_code == 200, r.text
    assert sid not in _ids(core, f"{SITES}/pending")
    assert sid in _ids(core, f"{SITES}/policy_pending")

    assert core.call("DELETE", f"{SITES}/{sid}").status_code == 204
    assert sid in _ids(core, f"{SITES}/pending", deleted="true")
    assert sid in _ids(core, f"{SITES}/policy_pending", deleted="1")
    r = core.call("GET", f"{SITES}/pending", params={"deleted": "maybe"})
    assert r.status_code == 400 and r.json()["field"] == "deleted"


def _wait_in_background(core: Core, since: int, timeout: float) -> tuple[threading.Thread, dict]:
    out: dict[str, Any] = {}

    def wait() -> None:
        start = time.monotonic()
        r = core.call("GET", "/xosapi/v1/changes", params={"since": since, "timeout": timeout})
        out["took"] = time.monotonic() - start
        out["status"] = r.status_code
        out["body"] = r.json()

    thread = threading.Thread(target=wait)
    thread.start()
    return thread, out


def test_a_waiting_client_is_woken_by_a_write_through_the_api(core: Core) -> None:
    now = core.call("GET", "/xosapi/v1/changes").json()
    thread, out = _wait_in_background(core, now["seq"], 30)
    time.sleep(0.3)  # lets the request reach its wait; had it not, the answer is the same
    assert core.call("POST", "/xosapi/v1/core/widgets", json={"note": "wake"}).status_code == 201
    thread.join(30)
    assert out["status"] == 200 and out["took"] < 10
    body = out["body"]
    assert body["epoch"] == now["epoch"] and body["seq"] > now["seq"]
    assert "Widget" in body["models"]


def test_a_waiting_client_is_woken_by_another_process(core: Core) -> None:
    now = core.call("GET", "/xosapi/v1/changes").json()
    thread, out = _wait_in_background(core, now["seq"], 30)
    code, _ = core.project.cli("objects", "create", "Site", "name=elsewhere")  # this process
    assert code == 0
    thread.join(30)
    assert out["status"] == 200 and out["took"] < 10, out
    assert "Site" in out["body"]["models"]


def test_the_feed_answers_at_its_timeout_or_at_once(core: Core) -> None:
    now = core.call("GET", "/xosapi/v1/changes").json()
    start = time.monotonic()
    r = core.call("GET", "/xosapi/v1/changes", params={"since": now["seq"], "timeout": "0.3"})
    assert r.json()["models"] == [] and time.monotonic() - start >= 0.25
    # a number this server never gave (another epoch, say): anything may have changed
    r = core.call("GET", "/xosapi/v1/changes", params={"since": now["seq"] + 10**6})
    assert r.json()["models"] is None and r.json()["seq"] == now["seq"]
    for params, field in [({"since": "x"}, "since"), ({"since": 1, "timeout": 3600}, "timeout")]:
        r = core.call("GET", "/xosapi/v1/changes", params=params)
        assert r.status_code == 400 and r.json()["field"] == field
    assert core.call("GET", "/xosapi/v1/changes", user=None).status_code == 401


OUTCOMES = "/xosapi/v1/outcomes"


def test_a_synchronizer_writes_outcomes_in_one_batch(core: Core) -> None:
    a = core.call("POST", SITES, json={"name": "out-a"}).json()
    b = core.call("POST", SITES, json={"name": "out-b"}).json()
    gone = core.call("POST", SITES, json={"name": "out-gone"}).json()
    assert core.call("DELETE", f"{SITES}/{gone['id']}").status_code == 204
    body = {
        "updates": [
            {
                "model": "Site",
                "id": a["id"],
                "fields": {"enacted": a["updated"], "backend_code": 1},
            },
            {
                "model": "Site",
                "id": b["id"],
                "fields": {"backend_status": "boom", "backend_code": 2},
            },
        ],
        "purges": [{"model": "Site", "id": gone["id"]}],
    }
    r = core.call("POST", OUTCOMES, user="vsg", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"updated": 2, "purged": 1}
    after_a = core.call("GET", f"{SITES}/{a['id']}").json()
    after_b = core.call("GET", f"{SITES}/{b['id']}").json()
    assert after_a["enacted"] == a["updated"] and after_a["backend_code"] == 1
    assert after_b["backend_status"] == "boom" and after_b["updated"] == b["updated"]
    assert a["id"] not in _ids(core, f"{SITES}/pending")
    assert gone["id"] not in _ids(core, f"{SITES}/pending", deleted="true")  # purged
    # a retried batch is harmless: the purged row is simply not there any more
    assert core.call("POST", OUTCOMES, user="vsg", json=body).status_code == 200


def test_outcome_batches_are_checked_whole_and_for_synchronizers_only(core: Core) -> None:
    site = core.call("POST", SITES, json={"name": "out-checked"}).json()
    good = {"model": "Site", "id": site["id"], "fields": {"backend_status": "fine"}}
    r = core.call("POST", OUTCOMES, json={"updates": [good]})
    assert r.status_code == 403
    before = snapshot(core.project)
    sid = site["id"]
    for fields, model, oid, field in [
        ({"name": "x"}, "Site", sid, "updates[1].fields.name"),
        ({"updated": 1.0}, "Site", sid, "updates[1].fields.updated"),
        ({"backend_code": "x"}, "Site", sid, "updates[1].fields.backend_code"),
        ({"backend_code": 1}, "Nope", 1, "updates[1].model"),
        ({"backend_code": 1}, "Site", "1", "updates[1].id"),
    ]:
        bad = {"model": model, "id": oid, "fields": fields}
        r = core.call("POST", OUTCOMES, user="vsg", json={"updates": [good, bad]})
        assert r.status_code == 400, r.text
        assert r.json()["field"] == field
    r = core.call(
        "POST",
        OUTCOMES,
        user="vsg",
        json={"updates": [good], "purges": [{"model": "Site", "id": site["id"]}]},
    )
    assert r.status_code == 409 and r.json()["field"] == "purges[0]"  # a live object
    assert snapshot(core.project) == before  # the good update was not written either
