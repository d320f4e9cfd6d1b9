"""The embedded event bus over a real `core serve`: publish, fetch for a group, commit.

What goes over HTTP is checked against the store's own log (`EventLog`), read or written
in this process on the core's store file.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import xos_runtime
from xos_runtime.store import ModelAccessor, open_store
from xos_runtime.store.remote import RemoteAccessor

from .conftest import PASSWORDS, Core, Project
from .test_remote_cli import remote_project

EVENTS = "/xosapi/v1/events"


def _topic() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _fetch(core: Core, topic: str, group: str, **params: Any) -> list[dict[str, Any]]:
    r = core.call("GET", f"{EVENTS}/{topic}", user="vsg", params={"group": group, **params})
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


def test_a_message_published_over_http_is_in_the_stores_log(
    core: Core, local: ModelAccessor
) -> None:
    topic = _topic()
    body = {"value": "hello", "key": "k1", "headers": [["trace", _b64("abc")]]}
    r = core.call("POST", f"{EVENTS}/{topic}", json=body)  # alice: any user publishes
    assert r.status_code == 201, r.text
    assert r.json() == {"topic": topic, "partition": 0, "offset": 0}
    [record] = local.store.event_log.read((topic, 0), 0, 10)
    assert (record.key, record.value, record.headers) == (b"k1", b"hello", (("trace", b"abc"),))

    # The remote accessor: bytes and headers as a local accessor takes them.
    remote = xos_runtime.connect(core.url.replace("://", f"://alice:{PASSWORDS['alice']}@"))
    assert isinstance(remote, RemoteAccessor)
    try:
        where = remote.publish_event(topic, b"\x00\xff", key="k2", headers=[("h", b"\x01")])
        assert remote.publish_event(topic, "text") == (0, 2)
    finally:
        remote.close()
    assert where == (0, 1)
    records = local.store.event_log.read((topic, 0), 1, 10)
    assert [(r.key, r.value, r.headers) for r in records] == [
        (b"k2", b"\x00\xff", (("h", b"\x01"),)),
        (None, b"text", ()),
    ]


def test_a_group_fetches_from_its_committed_offsets(core: Core, local: ModelAccessor) -> None:
    topic, group = _topic(), f"g-{uuid.uuid4().hex[:8]}"
    local.publish_event(topic, "one", key="a")
    local.publish_event(topic, "two")
    got = _fetch(core, topic, group)
    assert [(m["offset"], m["key"], m["value"]) for m in got] == [
        (0, _b64("a"), _b64("one")),
        (1, None, _b64("two")),
    ]
    assert got[0]["partition"] == 0 and got[0]["timestamp"] > 0
    # no commit: delivered again
    assert [m["offset"] for m in _fetch(core, topic, group)] == [0, 1]
    assert [m["offset"] for m in _fetch(core, topic, group, max=1)] == [0]

    commit = {"group": group, "offsets": [{"partition": 0, "offset": 2}]}
    r = core.call("POST", f"{EVENTS}/{topic}/commit", user="vsg", json=commit)
    assert r.status_code == 200, r.text
    assert local.store.event_log.committed(group) == {(topic, 0): 2}
    assert _fetch(core, topic, group) == []  # committed: not delivered again
    local.publish_event(topic, "three")
    assert [m["value"] for m in _fetch(core, topic, group)] == [_b64("three")]
    # another group reads the topic from its start
    assert len(_fetch(core, topic, group + "-other")) == 3

    # Another member of the group gets nothing while the first holds the partition.
    assert _fetch(core, topic, group, member="second") == []
    refused = core.call(
        "POST", f"{EVENTS}/{topic}/commit", user="vsg", json={**commit, "member": "second"}
    )
    assert refused.status_code == 409 and refused.json()["field"] == "offsets", refused.text
    assert local.store.event_log.committed(group) == {(topic, 0): 2}


def test_a_waiting_fetch_is_woken_by_a_publish(core: Core, local: ModelAccessor) -> None:
    topic, group = _topic(), f"g-{uuid.uuid4().hex[:8]}"
    local.store.event_log.create_topic(topic, 1)
    result: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        result["messages"] = _fetch(core, topic, group, wait=20)
        result["took"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        # the fetch has joined the group (its row is there) before the publish
        deadline = time.monotonic() + 10
        while not _joined(local, group) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _joined(local, group)
        local.publish_event(topic, "wake")
    finally:
        waiter.join(30)
    assert [m["value"] for m in result["messages"]] == [_b64("wake")]
    assert result["took"] < 10, result


def _joined(local: ModelAccessor, group: str) -> bool:
    import sqlalchemy as sa

    o = local.store.schema.event_offsets
    with local.store.read() as conn:
        return bool(
            conn.execute(
                sa.select(sa.func.count()).select_from(o).where(o.c.consumer_group == group)
            ).scalar_one()
        )


def test_who_may_publish_and_consume(core: Core) -> None:
    topic = _topic()
    path = f"{EVENTS}/{topic}"
    calls = (("POST", path), ("GET", path), ("DELETE", path), ("POST", path + "/commit"))
    for method, p in calls:
        r = core.call(method, p, user=None, params={"group": "g"}, json={"value": "x"})
        assert r.status_code == 401, (method, p, r.text)
    r = core.call("GET", path, params={"group": "g"})
    assert r.status_code == 403 and "synchronizers only" in r.json()["error"], r.text
    r = core.call("POST", path + "/commit", json={"group": "g", "offsets": []})
    assert r.status_code == 403, r.text
    assert core.call("DELETE", path, params={"group": "g"}).status_code == 403
    assert core.call("DELETE", path, user="vsg", params={"group": "g"}).status_code == 204
    assert core.call("POST", path, json={"value": "x"}).status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "field"),
    [
        ("POST", "/bad topic", {"value": "x"}, {}, "topic"),
        ("POST", "/" + "x" * 250, {"value": "x"}, {}, "topic"),
        ("GET", "/bad*topic", None, {"group": "g"}, "topic"),
        ("POST", "/ok", {"key": "k"}, {}, "value"),
        ("POST", "/ok", {"value": 3}, {}, "value"),
        ("POST", "/ok", {"value": "x", "colour": 1}, {}, "colour"),
        ("POST", "/ok", {"value": "@@", "encoding": "base64"}, {}, "value"),
        ("POST", "/ok", {"value": "x", "headers": [["h", "é"]]}, {}, "headers"),
        ("GET", "/ok", None, {}, "group"),
        ("GET", "/ok", None, {"group": "g", "wait": "nan"}, "wait"),
        ("GET", "/ok", None, {"group": "g", "max": "0"}, "max"),
        ("GET", "/ok", None, {"group": "g", "member": "a|b"}, "member"),
        ("GET", "/ok", None, {"group": "g", "positions": "0:1,x"}, "positions"),
        ("DELETE", "/ok", None, {"group": "\x01"}, "group"),
        (
            "POST",
            "/ok/commit",
            {"group": "g", "offsets": [{"partition": 7, "offset": 0}]},
            {},
            "offsets",
        ),
        ("POST", "/ok/commit", {"group": "", "offsets": []}, {}, "group"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    core: Core,
    core_project: Project,
    method: str,
    path: str,
    body: Any,
    params: dict[str, str],
    field: str,
) -> None:
    core.call("POST", f"{EVENTS}/ok", json={"value": "made"})
    before = open_store(core_project.url)
    try:
        ends = before.store.event_log.ends()
    finally:
        before.close()
    r = core.call(method, EVENTS + path, user="vsg", json=body, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and r.json()["error"], r.text
    after = open_store(core_project.url)
    try:
        assert after.store.event_log.ends() == ends  # nothing published
    finally:
        after.close()


def test_events_publish_over_the_core(core: Core, local: ModelAccessor, tmp_path: Path) -> None:
    project = remote_project(tmp_path / "remote", core.url)
    topic = _topic()
    code, out = project.cli("events", "publish", topic, "from-cli", "--key", "k", "--json")
    assert code == 0, out
    assert json.loads(out) == {"topic": topic, "partition": 0, "offset": 0}
    code, out = project.cli("events", "publish", topic, "again")
    assert code == 0 and out.strip() == f"{topic} partition 0 offset 1", out
    records = local.store.event_log.read((topic, 0), 0, 10)
    assert [(r.key, r.value) for r in records] == [(b"k", b"from-cli"), (None, b"again")]
