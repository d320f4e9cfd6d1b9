"""The base classes plugin authors subclass, and validation of hand-built plugin tables."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import attrs
import pytest

from xos_runtime.exceptions import PluginError
from xos_runtime.plugins import PluginInfo, PluginTable, validate_plugins
from xos_runtime.steps import (
    Event,
    EventStep,
    ModelPolicy,
    Policy,
    PullStep,
    SyncStep,
    make_event,
)


class Site:
    """Stands for an accessor model class that says its model name."""

    model_name = "Site"


class SiteModel:
    model_name = "Site"


class Slice:
    """A class without `model_name` stands for its `__name__`."""


class RecordingAccessor:
    """A stand-in for the store's accessor: records `fetch_pending` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool]] = []

    def fetch_pending(self, model_names: list[str], deleted: bool) -> list[str]:
        self.calls.append((model_names, deleted))
        return [f"{name}:{'deleted' if deleted else 'pending'}" for name in model_names]


@pytest.mark.parametrize(
    ("observes", "names"),
    [
        (None, []),
        ("Site", ["Site"]),
        (Site, ["Site"]),
        (Slice, ["Slice"]),
        ([Site, "User", Slice, "User", SiteModel], ["Site", "User", "Slice"]),
        (("Site",), ["Site"]),
    ],
)
def test_observed_model_names(observes: Any, names: list[str]) -> None:
    step: type[SyncStep] = type("Step", (SyncStep,), {"observes": observes})
    assert step.observed_model_names() == names


@pytest.mark.parametrize("observes", [5, ["Site", 5], [""]])
def test_observed_model_names_rejects_other_things(observes: Any) -> None:
    step: type[SyncStep] = type("Step", (SyncStep,), {"observes": observes})
    with pytest.raises(TypeError, match=r"Step\.observes must be a model name"):
        step.observed_model_names()


def test_sync_step_defaults_and_fetch_pending() -> None:
    class SyncSite(SyncStep):
        observes = [Site, "User"]

    accessor = RecordingAccessor()
    step = SyncSite(model_accessor=accessor, driver="ignored")

    assert step.fetch_pending(deleted=False) == ["Site:pending", "User:pending"]
    assert step.fetch_pending(True) == ["Site:deleted", "User:deleted"]
    assert accessor.calls == [(["Site", "User"], False), (["Site", "User"], True)]
    step.sync_record(object())  # the defaults do nothing
    step.delete_record(object())
    assert (SyncSite.concurrency, SyncSite.timeout) == (None, None)
    assert not hasattr(step, "after_sync_save")
    with pytest.raises(RuntimeError, match="SyncSite has no model_accessor"):
        SyncSite().fetch_pending(deleted=False)


def test_default_logger_is_bound_to_the_step(log_messages: list[tuple[str, str]]) -> None:
    records: list[dict[str, Any]] = []

    class PullNothing(PullStep):
        pass

    step = PullNothing()
    from loguru import logger

    sink = logger.add(lambda m: records.append(m.record["extra"]), level="DEBUG")
    try:
        step.pull_records()  # must not crash, unlike XOS's PullStep
    finally:
        logger.remove(sink)
    assert records == [{"step": "PullNothing"}]
    assert ("DEBUG", "PullNothing does not override pull_records") in log_messages
    assert PullNothing.interval == 5

    custom = logger.bind(step="custom")
    assert PullNothing(log=custom).log is custom


def test_policy_handlers_are_optional() -> None:
    class SitePolicy(Policy):
        model_name = "Site"

        def handle_create(self, obj: Any) -> None:
            pass

    assert Policy is ModelPolicy
    policy = SitePolicy(model_accessor="accessor")
    assert policy.logger is policy.log and policy.model_accessor == "accessor"
    assert getattr(policy, "handle_create", None) is not None
    assert getattr(policy, "handle_update", None) is None
    assert getattr(policy, "after_policy_save", None) is None
    assert [SitePolicy.handles(a) for a in ("create", "update", "delete")] == [True, False, False]
    with pytest.raises(ValueError, match="unknown policy action 'save'"):
        SitePolicy.handles("save")


@pytest.mark.parametrize(
    ("topics", "pattern", "error"),
    [
        (["a"], None, None),
        ([], "xos\\..*", None),
        ([], None, "sets neither topics nor pattern; set exactly one"),
        (["a"], "b", "sets both topics and pattern; set exactly one"),
        ("xos.gui_events", None, "topics must be a list of topic names, not the string"),
        (["a", ""], None, "topics must be non-empty strings"),
    ],
)
def test_event_step_subscription(topics: Any, pattern: str | None, error: str | None) -> None:
    step: type[EventStep] = type("Events", (EventStep,), {"topics": topics, "pattern": pattern})
    result = step.subscription_error()
    assert result == error if error is None else result is not None and result.startswith(error)
    assert step.technology == "kafka"


def test_event_record(log_messages: list[tuple[str, str]]) -> None:
    event = Event(
        topic="xos.gui_events",
        key=b"Site",
        value=b'{"pk": 1}',
        timestamp=1.5,
        partition=0,
        offset=7,
        headers=[("h", b"v")],
    )
    assert event.headers == (("h", b"v"),)
    assert event.json() == {"pk": 1}
    assert Event(topic="t").headers == ()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.offset = 8  # type: ignore[misc]
    with pytest.raises(ValueError, match="has no value"):
        Event(topic="t").json()

    # what the buses make, one per message: the same event
    made = make_event("xos.gui_events", b"Site", b'{"pk": 1}', 1.5, 0, 7, [("h", b"v")])
    assert made == event and hash(made) == hash(event) and repr(made) == repr(event)
    assert make_event("t", None, None, None, None, None, ()) == Event(topic="t")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        made.offset = 8  # type: ignore[misc]

    EventStep().process_event(event)  # the default only warns
    assert (
        "WARNING",
        "EventStep does not override process_event; event on xos.gui_events dropped",
    ) in log_messages


def info(kind: Any, cls: Any, name: str = "x") -> PluginInfo:
    return PluginInfo(kind=kind, name=name, target=f"tests:{name}", cls_or_module=cls, file="f.py")


def test_validate_hand_built_table() -> None:
    class Good(SyncStep):
        observes = "Site"

    class NoObserves(SyncStep):
        pass

    class BadNumbers(SyncStep):
        observes = "Site"
        concurrency = 0
        timeout = -1

    class NoModel(ModelPolicy):
        pass

    class SlowPull(PullStep):
        interval = 0
        timeout = 0

    table = PluginTable(
        [
            info("sync_step", Good, "Good"),
            info("sync_step", NoObserves, "NoObserves"),
            info("sync_step", BadNumbers, "BadNumbers"),
            info("model_policy", NoModel, "NoModel"),
            info("pull_step", SlowPull, "SlowPull"),
            info("event_step", Good, "Good"),
            info("hooks", ModuleType("hooks"), "hooks"),
        ]
    )

    with pytest.raises(PluginError) as excinfo:
        validate_plugins(table, ["Site"])
    assert str(excinfo.value).splitlines() == [
        "plugin file f.py (NoObserves) has no `observes`: set it to the model (or models) the "
        "step syncs",
        "plugin file f.py (BadNumbers) concurrency must be a positive integer or None, not 0",
        "plugin file f.py (BadNumbers) timeout must be a positive number of seconds or None, "
        "not -1",
        "plugin file f.py (NoModel) has no `model_name`: set it to the name of the model the "
        "policy polices",
        "plugin file f.py (SlowPull) interval must be a positive number of seconds, not 0",
        "plugin file f.py (SlowPull) timeout must be a positive number of seconds or None, not 0",
        "plugin file f.py (Good) is not an EventStep subclass: it is a SyncStep subclass "
        "(declare it in the *.sync_steps group)",
    ]

    result = validate_plugins(table, ["Site"], skip_broken=True)
    assert [p.name for p in result.table] == ["Good", "hooks"]
    assert len(result.failures) == 7

    # Without the models, only the checks that do not need them run.
    unknown = PluginTable([info("sync_step", type("S", (SyncStep,), {"observes": "Nope"}))])
    assert validate_plugins(unknown, None).failures == ()
