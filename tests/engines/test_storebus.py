"""The event bus in the store (`event_bus.kind: store`, the default): the bus itself on SQLite
and PostgreSQL, and `xos-runtime events publish` with real `run` processes.

The event engine's semantics on this bus (retries, dead letters, restarts, rebalances) are
the parametrized tests of `test_events.py` (`buses`: ``store``, ``store-pg``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import xos_runtime
from xos_runtime.engines.events.bus import Subscription
from xos_runtime.engines.events.memory import MemoryBus
from xos_runtime.engines.events.storebus import StoreBus
from xos_runtime.models.definitions import ModelSet
from xos_runtime.store import SqlStore
from xos_runtime.store.eventlog import PartitionLost
from xos_runtime.store.notify import channel_dir_for

REPO = Path(__file__).resolve().parents[2]


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


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stores(store_url: str) -> Iterator[Callable[[], SqlStore]]:
    """`stores()`: a new handle on one store (each as another process would open it)."""
    made: list[SqlStore] = []

    def make() -> SqlStore:
        made.append(SqlStore(store_url, ModelSet()))
        return made[-1]

    yield make
    for store in made:
        store.close()


def values(events: list[Any]) -> list[bytes]:
    return [e.value for e in events]


# -- the bus ------------------------------------------------------------------------------------


def test_groups_offsets_patterns_and_a_poll_woken_by_a_publish(stores) -> None:
    bus = StoreBus(stores(), partitions=2)
    a = bus.consumer("g1", Subscription.of(["t"]))
    b = bus.consumer("g1", Subscription.of(["t"]))
    other = bus.consumer("g2", Subscription.of(pattern=r"t|u\..*"))
    where = [bus.publish("t", f"k{i}", f"v{i}") for i in range(6)]
    assert {p for p, _ in where} == {0, 1}  # keys hash over both partitions
    for partition in (0, 1):  # offsets count from 0 in each partition
        offsets = [o for p, o in where if p == partition]
        assert offsets == list(range(len(offsets)))
    assert bus.publish("u.x", None, "u") == (0, 0)
    bus.publish("ux", None, "not matched: a pattern matches the whole name")
    got_a = a.poll(0)
    assert sorted(values(got_a)) == [f"v{i}".encode() for i in range(6)]
    assert b.poll(0) == []  # the group's partitions are a's: never the same message to both
    assert sorted(values(other.poll(0))) == [b"u", *(f"v{i}".encode() for i in range(6))]
    first = next(e for e in got_a if e.value == b"v0")
    assert (first.topic, first.key, first.headers) == ("t", b"k0", ())
    assert first.timestamp == pytest.approx(time.time(), abs=60)
    # a commits one partition and leaves: b takes both, from the committed offsets
    done = [e for e in got_a if e.partition == 0]
    a.commit({("t", 0): done[-1].offset + 1})
    a.close()
    assert bus.committed("g1") == {("t", 0): done[-1].offset + 1}
    got_b = wait_for(lambda: b.poll(0), 5)
    assert sorted(values(got_b)) == sorted(e.value for e in got_a if e.partition == 1)
    # a waiting poll is woken by a publish at once (its timeout is 10 s)
    woke: list[Any] = []
    thread = threading.Thread(target=lambda: woke.extend(b.poll(10)))
    thread.start()
    start = time.monotonic()
    bus.publish("t", None, "late", headers=[("h", b"\x00\xff")])
    thread.join(10)
    assert values(woke) == [b"late"] and woke[0].headers == (("h", b"\x00\xff"),)
    assert time.monotonic() - start < 2
    # and `wakeup` ends a waiting poll with nothing
    thread = threading.Thread(target=lambda: woke.extend(b.poll(10)))
    thread.start()
    start = time.monotonic()
    b.wakeup()
    thread.join(10)
    assert time.monotonic() - start < 2 and len(woke) == 1
    bus.close()


def test_a_publish_on_another_connection_wakes_a_poll_on_postgresql(pg_store_url: str) -> None:
    """Through LISTEN/NOTIFY, as between processes (between processes on a SQLite file:
    `test_a_publish_wakes_a_serving_run_at_once`)."""
    here, there = SqlStore(pg_store_url, ModelSet()), SqlStore(pg_store_url, ModelSet())
    try:
        consumer = StoreBus(here).consumer("g", Subscription.of(["t"]))
        consumer.poll(0)  # subscribed, and listening
        woke: list[Any] = []
        thread = threading.Thread(target=lambda: woke.extend(consumer.poll(10)))
        thread.start()
        start = time.monotonic()
        StoreBus(there).publish("t", None, "from elsewhere")
        thread.join(10)
        assert values(woke) == [b"from elsewhere"] and time.monotonic() - start < 2
        consumer.close()
    finally:
        here.close()
        there.close()


def test_a_member_that_stalls_past_its_lease_loses_its_partition(stores) -> None:
    first = StoreBus(stores(), lease_ttl=0.3)
    second = StoreBus(stores(), lease_ttl=0.3)  # another process on the same store
    first.publish("t", None, "m0")
    a = first.consumer("g", Subscription.of(["t"]))
    b = second.consumer("g", Subscription.of(["t"]))
    (m0,) = a.poll(0)
    assert b.poll(0) == []  # a holds the partition
    # a stalls (no poll, no commit): once its lease ran out, b takes the partition over
    # and gets the message a did not commit
    got = wait_for(lambda: b.poll(0.1), 10)
    assert values(got) == [b"m0"]
    with pytest.raises(PartitionLost, match=r"no longer owns t\[0\]"):
        a.commit({("t", 0): m0.offset + 1})  # too late: it will not overwrite b's progress
    b.commit({("t", 0): 1})
    first.publish("t", None, "m1")
    assert a.poll(0) == []  # a finds out it lost the partition
    assert values(b.poll(0)) == [b"m1"]
    assert second.committed("g") == {("t", 0): 1}
    first.close()
    second.close()


def test_retention_deletes_old_messages_and_groups_go_on_at_the_oldest_left(stores) -> None:
    clock = Clock()
    bus = StoreBus(stores(), retention=100, clock=clock)
    bus.publish("t", None, "m0")
    bus.publish("t", None, "m1")
    reader = bus.consumer("read-one", Subscription.of(["t"]))
    assert values(reader.poll(0)) == [b"m0", b"m1"]
    reader.commit({("t", 0): 1})  # m1 not consumed yet
    reader.close()
    clock.now += 150
    assert bus.publish("t", None, "m2") == (0, 2)  # swept m0 and m1; offsets go on
    late = bus.consumer("read-one", Subscription.of(["t"]))
    assert values(late.poll(0)) == [b"m2"]  # its offset pointed at a deleted message
    new = bus.consumer("new", Subscription.of(["t"]))
    assert [(e.offset, e.value) for e in new.poll(0)] == [(2, b"m2")]  # the oldest retained
    new.close()
    clock.now += 150  # no publish: a poll sweeps too
    newer = bus.consumer("newer", Subscription.of(["t"]))
    assert newer.poll(0) == []
    assert bus.end_offsets("t") == {0: 3}
    bus.close()


def test_concurrent_publishers_get_distinct_offsets_in_commit_order(stores) -> None:
    buses = [StoreBus(stores()) for _ in range(4)]
    buses[0].create_topic("t", 1)
    errors: list[BaseException] = []

    def publish(bus: StoreBus, n: int) -> None:
        try:
            for i in range(20):
                bus.publish("t", None, f"{n}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(b, n)) for n, b in enumerate(buses)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    consumer = buses[0].consumer("g", Subscription.of(["t"]))
    got = consumer.poll(0)
    assert [e.offset for e in got] == list(range(80))
    for n in range(4):  # each publisher's messages in the order it sent them
        mine = [e.value.decode() for e in got if e.value.startswith(f"{n}-".encode())]
        assert mine == [f"{n}-{i}" for i in range(20)]
    for bus in buses:
        bus.close()


def test_a_script_publishes_into_the_store_through_its_accessor(store_url: str) -> None:
    SqlStore(store_url, ModelSet()).close()
    accessor = xos_runtime.connect(store_url)  # a store URL: the store's own log
    try:
        assert accessor.publish_event("t", b"v1") == (0, 0)
        assert accessor.publish_event("t", "v2", key="k", headers=[("h", b"x")]) == (0, 1)
        bus = StoreBus(accessor.store)
        got = bus.consumer("g", Subscription.of(["t"])).poll(0)
        assert [(e.key, e.value, e.headers) for e in got] == [
            (None, b"v1", ()),
            (b"k", b"v2", (("h", b"x"),)),
        ]
        # inside `atomic()` a message is part of the transaction: gone if it rolls back
        with pytest.raises(RuntimeError), accessor.atomic():
            accessor.publish_event("new", "rolled back")
            raise RuntimeError("abort")
        assert bus.end_offsets("new") == {}
        assert accessor.publish_event("new", "kept") == (0, 0)
        bus.close()
    finally:
        accessor.close()


def test_the_in_memory_store_has_the_bus_too() -> None:
    store = SqlStore("sqlite://", ModelSet())
    try:
        bus = StoreBus(store)
        consumer = bus.consumer("g", Subscription.of(["t"]))
        bus.publish("t", "k", "v")
        assert values(consumer.poll(0)) == [b"v"]
        consumer.commit({("t", 0): 1})
        assert bus.committed("g") == {("t", 0): 1}
        bus.close()
    finally:
        store.close()


def test_a_steps_accessor_publishes_to_the_configured_bus(make_runtime, use_dists) -> None:
    use_dists("xrt-events")
    import xrt_events.steps as steps

    steps.reset()
    rt = make_runtime()
    assert isinstance(rt.event_bus, StoreBus)  # no `event_bus` section: the store's
    events = {e.name: e for e in rt.engines()}["events"]
    where = rt.accessor.publish_event("xrt.sites", json.dumps({"name": "east"}), key="k")
    assert where == (0, 0)
    events.run_pass()
    assert [e.key for e in steps.calls("SiteEvents")] == [b"k"]
    assert [s.name for s in rt.accessor.Site.objects.all()] == ["east"]
    other = MemoryBus()  # another bus for the runtime: the accessor follows it
    rt.event_bus = other
    rt.accessor.publish_event("xrt.sites", b"{}")
    assert other.end_offsets("xrt.sites") == {0: 1}


# -- `events publish` and `run` processes -------------------------------------------------------

STEP = """\
import json, os, time
from xos_runtime import EventStep

HANDLED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "handled")


class Recorder(EventStep):
    topics = ["orders"]

    def process_event(self, event):
        if event.value.startswith(b"slow"):
            time.sleep(0.02)
        line = {"pid": os.getpid(), "offset": event.offset, "value": event.value.decode(),
                "sent": event.timestamp, "at": time.time()}
        with open(HANDLED, "a") as f:
            f.write(json.dumps(line) + "\\n")
"""


class Project:
    """A config with one model and one event step (`Recorder`, topic `orders`), which writes
    a line per message to `handled`; the CLI as processes."""

    def __init__(self, root: Path):
        self.root = root
        (root / "models").mkdir()
        (root / "models" / "site.xproto").write_text(
            "message Site (XOSBase) {\n    required string name = 1;\n}\n"
        )
        (root / "steps").mkdir()
        (root / "steps" / "recorder.py").write_text(STEP)
        self.config = root / "config.yaml"
        self.config.write_text(
            "name: storebus\nmodels_dir: models\nevent_steps_dir: steps\n"
            "accessor: {endpoint: sqlite:///store.db}\n"
            "plugins: {disabled: [xos-runtime-demo]}\n"
        )
        self.url = f"sqlite:///{root / 'store.db'}"
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.env.pop("XOS_CONFIG_FILE", None)
        self.procs: list[subprocess.Popen[str]] = []

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "xos_runtime", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def publish(self, *args: str) -> subprocess.CompletedProcess[str]:
        out = self.cli("events", "-C", str(self.config), "publish", *args)
        assert out.returncode == 0, out.stderr
        return out

    def serve(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xos_runtime", "run", "-C", str(self.config)],
            env=self.env,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def handled(self) -> list[dict[str, Any]]:
        path = self.root / "handled"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def stop(self, proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    proj = Project(tmp_path)
    yield proj
    for proc in proj.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_events_publish_before_any_run_and_handled_once_across_restarts(project) -> None:
    assert not (project.root / "store.db").exists()
    out = project.publish("orders", "first")  # creates the store: no run opened it yet
    assert out.stdout == "orders partition 0 offset 0\n"
    out = project.cli("events", "publish", "-C", str(project.config), "--key", "k", "--json")
    assert out.returncode == 2  # TOPIC and VALUE missing: usage
    out = project.cli(
        "events", "publish", "-C", str(project.config), "--key", "k", "--json", "orders", "2nd"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"topic": "orders", "partition": 0, "offset": 1}
    accessor = xos_runtime.connect(project.url)  # a store like any other, marker included
    accessor.close()
    run = project.cli("run", "-C", str(project.config), "--until-idle")
    assert run.returncode == 0, run.stderr
    assert [h["value"] for h in project.handled()] == ["first", "2nd"]
    again = project.cli("run", "-C", str(project.config), "--until-idle")
    assert again.returncode == 0, again.stderr
    assert len(project.handled()) == 2  # committed: not handled again after a restart
    project.publish("orders", "third")
    project.cli("run", "-C", str(project.config), "--until-idle")
    assert [h["value"] for h in project.handled()] == ["first", "2nd", "third"]


def test_events_publish_needs_no_models(project, tmp_path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: bare\nplugins: {disabled: [xos-runtime-demo]}\n")
    out = project.cli("events", "-C", str(bare), "publish", "orders", "v")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "orders partition 0 offset 0\n"
    accessor = xos_runtime.connect(f"sqlite:///{tmp_path / 'bare.db'}")
    try:
        bus = StoreBus(accessor.store)
        assert values(bus.consumer("g", Subscription.of(["orders"])).poll(0)) == [b"v"]
        bus.close()
    finally:
        accessor.close()


def test_events_publish_refuses_a_bad_topic_or_config_in_one_line(project, tmp_path) -> None:
    for topic in ("", "a b"):
        out = project.cli("events", "publish", "-C", str(project.config), topic, "v")
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and "expected a topic name" in out.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nevent_bus: {kind: store, retention: -1}\n")
    out = project.cli("events", "publish", "-C", str(bad), "orders", "v")
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "event_bus.retention" in out.stderr


def test_a_publish_wakes_a_serving_run_at_once(project) -> None:
    """The event engine polls with a 1 s timeout: a message handled well within it, each
    time, was woken by its publish."""
    project.publish("orders", "warm-up")  # makes the store, for the script below
    run = project.serve()
    accessor = xos_runtime.connect(project.url)  # another process: a script
    try:
        wait_for(lambda: project.handled(), 60)  # the run is up and its consumer waits
        for i in range(5):
            accessor.publish_event("orders", f"m{i}")
            wait_for(lambda n=i + 2: len(project.handled()) == n, 5)
        lags = [h["at"] - h["sent"] for h in project.handled()[1:]]
        assert max(lags) < 0.5, lags
    finally:
        accessor.close()
    start = time.monotonic()
    project.publish("orders", "from the shell")  # `xos-runtime events publish`, a process
    wait_for(lambda: project.handled()[-1]["value"] == "from the shell", 2)
    assert time.monotonic() - start < 10
    project.stop(run)


def test_a_killed_run_holds_no_partition_from_the_next_run(project) -> None:
    """Its lease would last 30 s more; on the same host, the process is seen to be gone."""
    project.publish("orders", "before")
    run = project.serve()
    accessor = xos_runtime.connect(project.url)
    try:  # handled and committed: it holds the partition now
        committed = accessor.store.event_log.committed
        wait_for(lambda: committed("storebus.Recorder") == {("orders", 0): 1}, 60)
    finally:
        accessor.close()
    run.kill()
    run.wait(10)
    project.publish("orders", "after the crash")
    out = project.cli("run", "-C", str(project.config), "--until-idle")
    assert out.returncode == 0, out.stderr
    assert [h["value"] for h in project.handled()] == ["before", "after the crash"]


def test_two_runs_in_one_group_handle_each_message_once(project) -> None:
    xos_runtime.connect(project.config).close()  # makes the store, as a script may
    first, second = project.serve(), project.serve()
    # both consumers wait (each has its socket on the bus's wake-up channel): the first
    # publish wakes both at once, and only the partition's owner may read it
    channel = Path(channel_dir_for(f"{project.root / 'store.db'}#events"))
    pids = {first.pid, second.pid}

    def waiting() -> set[int]:
        names = os.listdir(channel) if channel.exists() else []
        return {int(n.split("-")[0]) for n in names if n.endswith(".sock")} & pids

    wait_for(lambda: waiting() == pids, 60)
    accessor = xos_runtime.connect(project.url)
    try:
        for i in range(30):
            accessor.publish_event("orders", f"slow a{i}", key=f"k{i}")
        wait_for(lambda: len(project.handled()) >= 30, 60)
        handled = project.handled()
        assert sorted(h["offset"] for h in handled) == list(range(30))  # each once
        (owner,) = {h["pid"] for h in handled}  # the partition is one member's
        # the owner stops: the other takes the partition over at once (it was freed)
        project.stop(first if owner == first.pid else second)
        for i in range(10):
            accessor.publish_event("orders", f"b{i}")
        wait_for(lambda: len(project.handled()) >= 40, 20)
    finally:
        accessor.close()
    later = project.handled()[30:]
    assert sorted(h["offset"] for h in later) == list(range(30, 40))
    assert {h["pid"] for h in later} == {second.pid if owner == first.pid else first.pid}
    project.stop(second if owner == first.pid else first)
    assert len(project.handled()) == 40
