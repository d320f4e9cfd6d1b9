"""`RemoteBus`: the `EventBus`/`Consumer` protocols over a real core's event routes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from xos_runtime.engines.events.bus import Subscription
from xos_runtime.engines.events.remotebus import RemoteBus
from xos_runtime.store import ModelAccessor
from xos_runtime.store.remote import CoreClient, CoreConflict

from .conftest import PASSWORDS, Core


@pytest.fixture()
def bus(core: Core) -> Iterator[RemoteBus]:
    client = CoreClient(core.url, username="vsg", password=PASSWORDS["vsg"], retry_for=2)
    remote = RemoteBus(client)
    yield remote
    remote.close()
    client.close()


def _names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"rb-{tag}", f"group-{tag}"


def test_publish_poll_commit_seek_pause(bus: RemoteBus, local: ModelAccessor) -> None:
    topic, group = _names()
    assert bus.publish(topic, "k", b"\x00one") == (0, 0)
    local.publish_event(topic, "two")
    consumer = bus.consumer(group, Subscription.of([topic]))
    got = consumer.poll(5)
    assert [(e.key, e.value, e.offset) for e in got] == [(b"k", b"\x00one", 0), (None, b"two", 1)]
    assert consumer.poll(0) == []  # read on from its positions, not the committed offsets
    consumer.commit({(topic, 0): 2})
    assert local.store.event_log.committed(group) == {(topic, 0): 2}

    consumer.seek((topic, 0), 1)
    assert [e.value for e in consumer.poll(0)] == [b"two"]
    consumer.pause((topic, 0))
    local.publish_event(topic, "three")
    assert consumer.poll(0) == []
    consumer.resume((topic, 0))
    assert [e.value for e in consumer.poll(0)] == [b"three"]

    # a second member of the group gets nothing while the first holds the partition...
    other = bus.consumer(group, Subscription.of([topic]))
    assert other.poll(0) == []
    with pytest.raises(CoreConflict):
        other.commit({(topic, 0): 3})
    # ...and takes it, from the committed offset, once the first closes
    consumer.close()
    assert [e.value for e in other.poll(5)] == [b"three"]
    other.close()


def test_a_waiting_poll_returns_with_a_message_published_meanwhile(
    bus: RemoteBus, local: ModelAccessor
) -> None:
    topic, group = _names()
    local.store.event_log.create_topic(topic, 1)
    consumer = bus.consumer(group, Subscription.of([topic]))
    assert consumer.poll(0) == []  # joined: the next publish is for it
    result: dict[str, object] = {}

    def poll() -> None:
        started = time.monotonic()
        result["events"] = consumer.poll(20)
        result["took"] = time.monotonic() - started

    waiter = threading.Thread(target=poll)
    waiter.start()
    local.publish_event(topic, "wake")
    waiter.join(30)
    assert [e.value for e in result["events"]] == [b"wake"]  # type: ignore[attr-defined]
    assert result["took"] < 10, result


def test_a_pattern_reads_the_matching_topics_and_new_ones(
    bus: RemoteBus, local: ModelAccessor
) -> None:
    tag = uuid.uuid4().hex[:8]
    local.publish_event(f"pat-{tag}-a", "a")
    local.publish_event(f"pat-{tag}-a-not", "not")  # the pattern matches whole names
    local.publish_event(f"other-{tag}", "other")
    consumer = bus.consumer(f"g-{tag}", Subscription.of(pattern=rf"pat-{tag}-[a-z]"))
    assert [(e.topic, e.value) for e in consumer.poll(5)] == [(f"pat-{tag}-a", b"a")]
    local.publish_event(f"pat-{tag}-b", "b")  # a topic made after the consumer
    got: list[bytes] = []
    deadline = time.monotonic() + 20
    while not got and time.monotonic() < deadline:
        got = [e.value for e in consumer.poll(1)]
    assert got == [b"b"]
    consumer.close()
