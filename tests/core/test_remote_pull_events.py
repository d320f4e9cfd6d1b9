"""The pull and event engines over a real `core serve`: the shared schedule, the failed
calls of messages, and the engines themselves built in this process over a
`RemoteAccessor` (and a `RemoteBus`).

What goes over HTTP is checked against the core's store, opened here on its file.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

import xos_runtime
from xos_runtime.config import BackoffSettings, EventBusSettings, EventSettings
from xos_runtime.engines import EventEngine, PullEngine, open_event_bus
from xos_runtime.engines.events.engine import group_id
from xos_runtime.engines.events.remotebus import RemoteBus
from xos_runtime.steps import Event, EventStep, PullStep
from xos_runtime.store import Attempts, ModelAccessor
from xos_runtime.store.remote import RemoteAccessor, RemoteEventAttempts, RemoteSchedule

from .conftest import PASSWORDS, Core


def _tag() -> str:
    return uuid.uuid4().hex[:8]


def _connect(core: Core, user: str = "vsg") -> RemoteAccessor:
    url = core.url.replace("://", f"://{user}:{PASSWORDS[user]}@")
    remote = xos_runtime.connect(url)
    assert isinstance(remote, RemoteAccessor)
    return remote


def _wait_for(condition: Callable[[], Any], timeout: float, step: Callable[[], Any]) -> Any:
    """Call `step` until `condition()` is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        step()
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"condition not met within {timeout}s")


@pytest.fixture()
def remote(core: Core) -> Iterator[RemoteAccessor]:
    acc = _connect(core)
    yield acc
    acc.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


# -- the schedule ---------------------------------------------------------------------------------


def test_two_owners_share_the_runs_of_a_job(remote: RemoteAccessor, local: ModelAccessor) -> None:
    job = f"pull:tests.job/{_tag()}/.."  # any name: quoted whole, `/` and dots included
    a, b = remote.schedule("owner-a"), remote.schedule("owner-b")
    assert isinstance(a, RemoteSchedule)
    assert a.take(job, 100.0, 10.0) is True  # the first run: nobody had it
    assert b.take(job, 100.0, 10.0) is False  # the other owner does not get it
    assert b.take(job, 105.0, 10.0) is False  # not due yet
    assert b.take(job, 110.0, 10.0) is True  # the next interval: whoever asks first
    assert a.take(job, 110.0, 10.0) is False
    # a take sent again (its answer was lost) is still the sender's: no run lost...
    assert b.take(job, 110.0, 10.0) is True
    # ...and no second run taken by it
    assert b.take(job, 115.0, 10.0) is False
    # the row is the local schedule's own: a local process takes the next run from it
    assert local.schedule("local").take(job, 119.0, 10.0) is False
    assert local.schedule("local").take(job, 120.0, 10.0) is True
    assert a.take(job, 120.0, 10.0) is False


# -- the attempts ---------------------------------------------------------------------------------


def _round_trip(mine: Any, other: Any, topic: str) -> list[Any]:
    """What tests/store/test_attempts.py does, answers collected."""
    seen: list[Any] = [
        mine.failed((topic, 0, 5), "boom", 10.0),
        mine.failed((topic, 0, 5), "boom again", 12.0),
        mine.failed((topic, 1, 5), "elsewhere", 11.0),
        mine.failed((topic, 0, 9), "later", 13.0),
        other.failed((topic, 0, 5), "its own count", 14.0),
        mine.load({(topic, 0): (0, 8), ("u", 0): (0, 100)}),
        sorted(mine.load({(topic, 0): (5, 9), (topic, 1): (5, 5)})),
        mine.load({}),
    ]
    mine.forget({(topic, 0): 6})
    mine.forget({})
    seen += [
        sorted(mine.load({(topic, 0): (0, 100), (topic, 1): (0, 100)})),
        other.load({(topic, 0): (0, 100)}),
        mine.failed((topic, 0, 5), "delivered again after a reset", 15.0),
    ]
    return seen


def test_event_attempts_over_the_core_are_the_local_ones(
    remote: RemoteAccessor, local: ModelAccessor
) -> None:
    tag = _tag()
    group = f"group/{tag}.x"  # any name: quoted whole
    mine = remote.event_attempts(group)
    assert isinstance(mine, RemoteEventAttempts)
    over_core = _round_trip(mine, remote.event_attempts(f"{group}-other"), f"t-{tag}")
    here = _round_trip(
        local.event_attempts(f"l{group}"), local.event_attempts(f"l{group}-other"), f"t-{tag}"
    )
    assert over_core == here
    assert over_core[5] == {(f"t-{tag}", 0, 5): Attempts(2, "boom again", 12.0)}
    # in the core's store, under the group's name
    stored = local.event_attempts(group).load({(f"t-{tag}", 0): (0, 100)})
    assert stored[(f"t-{tag}", 0, 5)].attempts == 1

    # A failed call sent again (its answer was lost) is not counted twice; the next is.
    message = (f"t-{tag}", 3, 7)
    assert mine.failed(message, "boom", 20.5) == 1
    assert mine.failed(message, "boom", 20.5) == 1
    assert mine.failed(message, "boom", 22.5) == 2
    # locally every call counts (the engine never repeats one)
    assert local.event_attempts(group).failed(message, "boom", 22.5) == 3


# -- the routes -----------------------------------------------------------------------------------

ROUTES = [
    ("/xosapi/v1/schedule/job", {"owner": "o", "now": 1, "interval": 1}),
    (
        "/xosapi/v1/attempts/g/failed",
        {"topic": "t", "partition": 0, "offset": 0, "error": "e", "next_run": 1},
    ),
    ("/xosapi/v1/attempts/g/load", {"spans": []}),
    ("/xosapi/v1/attempts/g/forget", {"committed": []}),
]


@pytest.mark.parametrize(("path", "body"), ROUTES)
def test_the_routes_are_for_synchronizers(core: Core, path: str, body: Any) -> None:
    refused = core.call("POST", path, json=body)  # alice
    assert refused.status_code == 403, refused.text
    assert "synchronizers only" in refused.json()["error"]
    assert core.call("POST", path, json=body, user=None).status_code == 401
    assert core.call("POST", path, json=body, user="vsg").status_code == 200


BAD = [
    ("/xosapi/v1/schedule/job", [], None),
    ("/xosapi/v1/schedule/job", {"owner": "o", "now": 1}, "interval"),
    ("/xosapi/v1/schedule/job", {"owner": "o", "now": 1, "interval": 1, "x": 1}, "x"),
    ("/xosapi/v1/schedule/job", {"owner": "", "now": 1, "interval": 1}, "owner"),
    ("/xosapi/v1/schedule/job", {"owner": "o" * 201, "now": 1, "interval": 1}, "owner"),
    ("/xosapi/v1/schedule/job", {"owner": "o\x00", "now": 1, "interval": 1}, "owner"),
    ("/xosapi/v1/schedule/job", {"owner": "o", "now": "1", "interval": 1}, "now"),
    ("/xosapi/v1/schedule/job", {"owner": "o", "now": 1e300, "interval": 1}, "now"),
    ("/xosapi/v1/schedule/job", {"owner": "o", "now": 10**400, "interval": 1}, "now"),
    ("/xosapi/v1/schedule/job", {"owner": "o", "now": 1, "interval": -1}, "interval"),
    ("/xosapi/v1/schedule/job", {"owner": "o", "now": 1, "interval": True}, "interval"),
    ("/xosapi/v1/schedule/" + "j" * 401, {"owner": "o", "now": 1, "interval": 1}, "job"),
    ("/xosapi/v1/schedule/", {"owner": "o", "now": 1, "interval": 1}, "job"),
    (
        "/xosapi/v1/attempts/g/failed",
        {"topic": "t t", "partition": 0, "offset": 0, "error": "e", "next_run": 1},
        "topic",
    ),
    (
        "/xosapi/v1/attempts/g/failed",
        {"topic": "t", "partition": 2**31, "offset": 0, "error": "e", "next_run": 1},
        "partition",
    ),
    (
        "/xosapi/v1/attempts/g/failed",
        {"topic": "t", "partition": 0, "offset": -1, "error": "e", "next_run": 1},
        "offset",
    ),
    (
        "/xosapi/v1/attempts/g/failed",
        {"topic": "t", "partition": 0, "offset": 0, "error": "e\x00", "next_run": 1},
        "error",
    ),
    (
        "/xosapi/v1/attempts/g/failed",
        {"topic": "t", "partition": 0, "offset": 0, "error": 3, "next_run": 1},
        "error",
    ),
    (
        "/xosapi/v1/attempts/%01/failed",
        {"topic": "t", "partition": 0, "offset": 0, "error": "e", "next_run": 1},
        "group",
    ),
    ("/xosapi/v1/attempts/" + "g" * 256 + "/load", {"spans": []}, "group"),
    ("/xosapi/v1/attempts/g/load", {"spans": {}}, "spans"),
    ("/xosapi/v1/attempts/g/load", {"spans": [{"topic": "t", "partition": 0}]}, "spans"),
    (
        "/xosapi/v1/attempts/g/load",
        {"spans": [{"topic": "t", "partition": 0, "first": 0, "last": 2**63}]},
        "spans",
    ),
    (
        "/xosapi/v1/attempts/g/load",
        {"spans": [{"topic": "t", "partition": 0, "first": 0, "last": 1}] * 501},
        "spans",
    ),
    ("/xosapi/v1/attempts/g/forget", {"committed": [["t", 0, 1]]}, "committed"),
    (
        "/xosapi/v1/attempts/g/forget",
        {"committed": [{"topic": "", "partition": 0, "offset": 1}]},
        "committed",
    ),
    ("/xosapi/v1/attempts/g/forget", {}, "committed"),
]


@pytest.mark.parametrize(("path", "body", "field"), BAD)
def test_bad_bodies_are_refused_naming_the_field(
    core: Core, path: str, body: Any, field: str | None
) -> None:
    r = core.call("POST", path, json=body, user="vsg")
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["error"] and r.json()["field"] == field, r.text


def test_a_body_that_is_not_json_is_refused(core: Core) -> None:
    r = core.call("POST", "/xosapi/v1/attempts/g/load", data=b"{", user="vsg")
    assert r.status_code == 400 and "not JSON" in r.json()["error"], r.text


# -- the event engine -----------------------------------------------------------------------------


class Handled(EventStep):
    """Handles its topic's messages: `poison` fails twice, then works; others save a Site."""

    topics: ClassVar[list[str]] = []
    seen: ClassVar[list[bytes]] = []

    def process_event(self, event: Event) -> None:
        value = event.value or b""
        self.seen.append(value)
        if value == b"poison" and self.seen.count(value) <= 2:
            raise RuntimeError("poisoned")
        self.model_accessor.Site(name=value.decode()[:32]).save()


def test_an_event_engine_over_a_core_handles_and_retries(
    core: Core, remote: RemoteAccessor, local: ModelAccessor
) -> None:
    tag = _tag()
    topic, prefix = f"ev-{tag}", f"rt-{tag}"
    step = type("Handled", (Handled,), {"topics": [topic], "seen": []})
    bus = open_event_bus(EventBusSettings(kind="store"), accessor=remote)
    assert isinstance(bus, RemoteBus)
    clock = FakeClock()
    settings = EventSettings(
        max_attempts=5, backoff=BackoffSettings(initial=1.0, factor=2.0, jitter=0.0)
    )
    engine = EventEngine(
        remote,
        [("handled", step)],
        bus,
        group_prefix=prefix,
        settings=settings,
        clock=clock,
        rand=lambda: 0.5,
    )
    group = group_id(prefix, "handled")
    try:
        publisher = _connect(core, "alice")  # any user publishes through the core
        try:
            publisher.publish_event(topic, "poison")
            publisher.publish_event(topic, f"site-{tag}")
        finally:
            publisher.close()

        def attempts() -> dict[Any, Attempts]:
            return local.event_attempts(group).load({(topic, 0): (0, 10)})

        # the first call fails: counted in the core's store, the next message waits behind
        _wait_for(lambda: step.seen, 30, engine.run_pass)
        assert step.seen == [b"poison"]
        assert attempts()[(topic, 0, 0)].attempts == 1
        assert engine.run_pass().attempted == 0  # not due yet
        clock.now += 1.0
        _wait_for(lambda: attempts()[(topic, 0, 0)].attempts == 2, 30, engine.run_pass)
        clock.now += 10.0
        _wait_for(
            lambda: local.Site.objects.filter(name=f"site-{tag}").exists(), 30, engine.run_pass
        )
        assert step.seen == [b"poison"] * 3 + [f"site-{tag}".encode()]
        assert local.Site.objects.filter(name="poison").exists()
        # handled: committed in the core's store, and the attempts forgotten
        assert local.store.event_log.committed(group) == {(topic, 0): 2}
        assert attempts() == {}
    finally:
        engine.close()
        bus.close()


# -- the pull engine ------------------------------------------------------------------------------


class Pulled(PullStep):
    """Records which accessor called it."""

    interval: ClassVar[float] = 60.0
    calls: ClassVar[list[Any]] = []

    def pull_records(self) -> None:
        self.calls.append(self.model_accessor)


def test_a_pull_step_runs_once_per_interval_across_two_engines(core: Core) -> None:
    step = type(f"Pulled_{_tag()}", (Pulled,), {"calls": []})
    clock = FakeClock()
    first, second = _connect(core), _connect(core)
    engines = [
        PullEngine(acc, [step], shared_by=f"owner-{i}-{_tag()}", clock=clock)
        for i, acc in enumerate((first, second))
    ]
    try:
        for engine in engines:
            engine.run_pass()
        assert step.calls == [first]  # the first engine took the run; the second did not
        clock.now += 30.0
        for engine in reversed(engines):
            engine.run_pass()
        assert step.calls == [first]  # not due for either
        clock.now += 30.0
        for engine in reversed(engines):  # the second asks first this time
            engine.run_pass()
        assert step.calls == [first, second]
        clock.now += 60.0
        for engine in engines:
            engine.run_pass()
        assert step.calls == [first, second, first]
    finally:
        for engine in engines:
            engine.close()
        first.close()
        second.close()
