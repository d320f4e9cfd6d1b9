"""The call-log checker itself, on hand-written logs: it must see each violation (and only
violations), or the fault tests prove nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .calllog import CallLog


class Log:
    def __init__(self, path: Path):
        self.path = path
        self.lines: list[dict] = []
        self.n = 0

    def call(
        self,
        key: str,
        start: float,
        end: float | None,
        *,
        pid: int = 1,
        deps: tuple[str, ...] = (),
        result: str = "ok",
        version: float = 1.0,
    ) -> None:
        self.n += 1
        model, _, oid = key.partition(":")
        base = {
            "call": f"{pid}-{self.n}",
            "phase": "sync",
            "pid": pid,
            "host": "h",
            "model": model,
            "id": int(oid),
            "name": key,
            "version": version,
            "deps": list(deps),
        }
        self.lines.append({"ev": "start", **base, "t": start})
        if end is not None:
            self.lines.append({"ev": "end", **base, "result": result, "t": end})

    def load(self, **kwargs) -> CallLog:
        # the file order is by time, as the processes append
        order = sorted(self.lines, key=lambda e: e["t"])
        self.path.write_text("".join(json.dumps(e) + "\n" for e in order))
        return CallLog.load(self.path, **kwargs)


@pytest.fixture
def log(tmp_path: Path) -> Log:
    return Log(tmp_path / "calls.jsonl")


def test_a_clean_log_has_no_violation(log):
    log.call("Root:1", 0.0, 1.0, pid=1)
    log.call("Mid:1", 1.5, 2.0, pid=2, deps=("Root:1",))
    log.call("Root:2", 0.0, 1.0, pid=2, result="error")
    log.call("Root:2", 3.0, 4.0, pid=1)  # a retry after a failure is no duplicate
    found = log.load().check(workers=2, expected=["Root:1", "Mid:1", "Root:2"])
    assert not any(found.values()), found


def test_two_calls_in_flight_across_processes(log):
    log.call("Root:1", 0.0, 2.0, pid=1)
    log.call("Root:1", 1.0, 3.0, pid=2)
    found = log.load().check(workers=2)
    assert len(found["two calls in flight"]) == 1
    assert "Root:1" in found["two calls in flight"][0]
    assert found["synced twice"]


def test_an_open_call_is_in_flight_until_its_process_was_killed(log):
    log.call("Root:1", 0.0, None, pid=1)
    log.call("Root:1", 5.0, 6.0, pid=2)
    assert not log.load(killed={1: 4.0}).two_in_flight()
    assert log.load(killed={1: 5.5}).two_in_flight()
    assert log.load().two_in_flight()  # a call that never ended in a live process: forever


def test_a_dependent_started_before_its_dependency_ended(log):
    log.call("Root:1", 0.0, 1.0)
    log.call("Mid:1", 0.5, 0.8, deps=("Root:1",))
    log.call("Mid:2", 0.5, 0.8, deps=("Root:2",))  # never synced at all
    bad = log.load().order_violations()
    assert len(bad) == 2
    assert "Mid:1" in bad[0] and "Root:1" in bad[0]
    assert "never called" in bad[1]


def test_a_failed_dependency_does_not_count(log):
    log.call("Root:1", 0.0, 1.0, result="error")
    log.call("Mid:1", 1.5, 2.0, deps=("Root:1",))
    assert log.load().order_violations()


def test_duplicates_after_a_kill_are_bounded(log):
    for i in range(5):  # the killed process: 4 done (maybe not stored), 1 in flight
        log.call(f"Root:{i}", i, i + 0.5 if i < 4 else None, pid=1)
    for i in range(5):
        log.call(f"Root:{i}", 10 + i, 10.5 + i, pid=2)
    calls = log.load(killed={1: 5.0})
    assert calls.duplicates(workers=3) == []  # 5 <= 2 x 3
    bad = calls.duplicates(workers=2)  # 5 > 2 x 2
    assert len(bad) == 1 and "SIGKILLed pid 1: 5 objects" in bad[0]


def test_a_duplicate_of_a_live_process_is_never_excused(log):
    log.call("Root:1", 0.0, 1.0, pid=1)
    log.call("Root:1", 2.0, 3.0, pid=2)
    log.call("Root:2", 0.0, 1.0, pid=3)
    log.call("Root:2", 2.0, 3.0, pid=2)
    bad = log.load(killed={3: 1.5}).duplicates(workers=2)
    assert len(bad) == 1 and bad[0].startswith("Root:1 synced again")


def test_a_new_version_is_no_duplicate(log):
    log.call("Root:1", 0.0, 1.0, version=1.0)
    log.call("Root:1", 2.0, 3.0, version=2.0)
    assert log.load().duplicates(workers=2) == []


def test_missing_and_exactly_once(log):
    log.call("Root:1", 0.0, 1.0, result="error")
    log.call("Root:1", 2.0, 3.0)
    found = log.load().check(workers=2, expected=["Root:1", "Root:2"], exactly_once=True)
    assert found["never synced"] == ["1 objects never synced successfully: ['Root:2']"]
    assert found["more than one call"] == ["1 objects had more than one sync call: ['Root:1']"]


def test_assert_invariants_shows_the_calls(log):
    log.call("Root:1", 0.0, 2.0, pid=7)
    log.call("Root:1", 1.0, 3.0, pid=8)
    with pytest.raises(AssertionError, match=r"two calls in flight on Root:1: .*pid 7.*pid 8"):
        log.load().assert_invariants(workers=2)
