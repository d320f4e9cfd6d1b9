"""`HookSink`: every outcome reaches every implementation of the contract's outcome hooks,
as pluggy itself would call them: same order, same arguments, plugins added or removed later
included, wrappers honoured, an exception stopping the rest."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pluggy
import pytest

from xos_runtime.engines.outcome import Outcome
from xos_runtime.engines.sink import HookSink
from xos_runtime.hookspecs import hookimpl
from xos_runtime.plugins.manager import new_plugin_manager

OK = Outcome("ok", "OK", 1, 0.01, False)
Calls = list[tuple[str, str, Any]]


class Recorder:
    def __init__(self, name: str, calls: Calls):
        self.name = name
        self.calls = calls

    @hookimpl
    def xos_runtime_sync_outcome(self, obj: Any, outcome: Outcome) -> None:
        self.calls.append((self.name, "sync", obj))

    @hookimpl
    def xos_runtime_event_outcome(self, event: Any) -> None:
        self.calls.append((self.name, "event", event))


class Wrapper:
    def __init__(self, calls: Calls):
        self.calls = calls

    @hookimpl(wrapper=True)
    def xos_runtime_sync_outcome(self, obj: Any) -> Generator[None, None, None]:
        self.calls.append(("wrapper", "before", obj))
        yield
        self.calls.append(("wrapper", "after", obj))


class Failing:
    @hookimpl
    def xos_runtime_sync_outcome(self) -> None:
        raise RuntimeError("observer bug")


def both(pm: pluggy.PluginManager, act: Callable[[Any], None]) -> tuple[Calls, Calls]:
    """What `act` records through the sink, and through pluggy's own hook call."""
    calls: Calls = []
    for plugin in pm.get_plugins():
        if hasattr(plugin, "calls"):
            plugin.calls = calls
    act(HookSink(pm.hook))
    through_sink = list(calls)
    calls.clear()
    act(pm.hook)
    return through_sink, list(calls)


def sync_and_event(target: Any) -> None:
    if isinstance(target, HookSink):
        target.sync(object, "obj-1", OK)  # type: ignore[arg-type]
        target.event(object, "event-1", OK)  # type: ignore[arg-type]
    else:
        target.xos_runtime_sync_outcome(step=object, obj="obj-1", outcome=OK)
        target.xos_runtime_event_outcome(step=object, event="event-1", outcome=OK)


def test_every_implementation_in_pluggys_order_with_its_own_arguments() -> None:
    pm = new_plugin_manager()
    pm.register(Recorder("a", []))
    pm.register(Recorder("b", []))
    sink_calls, pluggy_calls = both(pm, sync_and_event)
    assert sink_calls == pluggy_calls
    assert sink_calls == [
        ("b", "sync", "obj-1"),
        ("a", "sync", "obj-1"),
        ("b", "event", "event-1"),
        ("a", "event", "event-1"),
    ]


def test_plugins_registered_or_removed_after_the_sink_was_made() -> None:
    pm = new_plugin_manager()
    calls: Calls = []
    first = Recorder("a", calls)
    pm.register(first)
    sink = HookSink(pm.hook)
    sink.sync(object, 1, OK)  # type: ignore[arg-type]
    pm.register(Recorder("late", calls))
    sink.sync(object, 2, OK)  # type: ignore[arg-type]
    pm.unregister(first)
    sink.sync(object, 3, OK)  # type: ignore[arg-type]
    assert calls == [("a", "sync", 1), ("late", "sync", 2), ("a", "sync", 2), ("late", "sync", 3)]


def test_a_wrapper_is_honoured() -> None:
    pm = new_plugin_manager()
    pm.register(Recorder("a", []))
    pm.register(Wrapper([]))
    sink_calls, pluggy_calls = both(pm, sync_and_event)
    assert sink_calls == pluggy_calls
    assert sink_calls[:3] == [
        ("wrapper", "before", "obj-1"),
        ("a", "sync", "obj-1"),
        ("wrapper", "after", "obj-1"),
    ]


def test_an_exception_stops_the_rest_as_in_pluggy() -> None:
    pm = new_plugin_manager()
    calls: Calls = []
    pm.register(Recorder("first-registered", calls))
    pm.register(Failing())  # registered last: called first
    with pytest.raises(RuntimeError, match="observer bug"):
        HookSink(pm.hook).sync(object, 1, OK)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="observer bug"):
        pm.hook.xos_runtime_sync_outcome(step=object, obj=1, outcome=OK)
    assert calls == []


def test_the_event_hook_for_a_batch_calls_what_is_registered_when_it_is_made() -> None:
    pm = new_plugin_manager()
    calls: Calls = []
    pm.register(Recorder("a", calls))  # takes only `event`
    hook = HookSink(pm.hook).event_hook()
    hook(object, "event-1", OK)  # type: ignore[arg-type]
    pm.register(Recorder("late", calls))
    hook(object, "event-2", OK)  # type: ignore[arg-type]  # made before "late" came
    HookSink(pm.hook).event_hook()(object, "event-3", OK)  # type: ignore[arg-type]
    assert calls == [
        ("a", "event", "event-1"),
        ("a", "event", "event-2"),
        ("late", "event", "event-3"),
        ("a", "event", "event-3"),
    ]


def test_the_event_hook_of_one_implementation_is_that_implementation() -> None:
    class Counter:
        def __init__(self) -> None:
            self.seen: list[tuple[Any, Any, Any]] = []

        @hookimpl
        def xos_runtime_event_outcome(self, step: Any, event: Any, outcome: Any) -> None:
            self.seen.append((step, event, outcome))

    pm = new_plugin_manager()
    counter = Counter()
    pm.register(counter)
    hook = HookSink(pm.hook).event_hook()
    assert hook == counter.xos_runtime_event_outcome  # no layer of the sink's in between
    hook(object, "event-1", OK)  # type: ignore[arg-type]
    assert counter.seen == [(object, "event-1", OK)]
