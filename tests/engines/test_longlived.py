"""`long_lived`: the collector pauses while a pass reads, its objects are frozen after, and
everything returns to the collector when the last block ends."""

from __future__ import annotations

import gc
import threading

import pytest

from xos_runtime.engines.longlived import long_lived


def test_reading_pauses_the_collector_and_keep_freezes_what_is_alive() -> None:
    assert gc.isenabled()
    with long_lived() as keep:
        assert not gc.isenabled()
        held = [object() for _ in range(1000)]
        keep()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(held)
        keep()  # a second call changes nothing
        assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_nested_blocks_unfreeze_only_when_the_last_ends() -> None:
    with long_lived() as outer:
        outer()
        with long_lived() as inner:
            assert not gc.isenabled()  # the inner block reads
            inner()
            assert gc.isenabled()
        assert gc.get_freeze_count() > 0  # the outer block still works with its objects
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_a_failure_while_reading_resumes_the_collector() -> None:
    with pytest.raises(RuntimeError), long_lived():
        raise RuntimeError("the read failed")
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    gc.disable()
    try:
        with long_lived() as keep:
            keep()
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_blocks_in_several_threads() -> None:
    started = threading.Barrier(2)
    release = threading.Event()

    def other() -> None:
        with long_lived() as keep:
            started.wait(5)
            keep()
            assert release.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    with long_lived() as keep:
        started.wait(5)
        keep()
    assert gc.get_freeze_count() > 0  # the other block still works with its objects
    release.set()
    thread.join(5)
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()
