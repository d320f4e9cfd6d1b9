"""What plugin authors subclass: `SyncStep`, `EventStep`, `PullStep` and `ModelPolicy`.

A plugin class is a plain class with a few class attributes that say what it handles and
methods the engines call. The runtime creates instances with `model_accessor=` and `log=`;
constructing one by hand (in a plugin's own unit tests, say) needs neither.

These classes know nothing about the engines: how often a method is called, on which thread,
and what happens to its exceptions is the engines' business (see `xos_runtime.exceptions` for
the exceptions a plugin raises to choose how a failure is treated).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from loguru import logger as _root_logger

if TYPE_CHECKING:
    from loguru import Logger

__all__ = [
    "POLICY_ACTIONS",
    "Event",
    "EventStep",
    "ModelPolicy",
    "Policy",
    "PullStep",
    "SyncStep",
]

#: The model-policy handlers, by action: `handle_<action>`.
POLICY_ACTIONS: tuple[str, ...] = ("create", "update", "delete")


class _PluginBase:
    """Stores what the runtime injects; shared by the four plugin base classes."""

    #: The accessor over the store (`accessor.Site.objects...`); injected by the runtime.
    model_accessor: Any
    #: A loguru logger bound to this plugin (the engines bind `model` and `id` as well).
    log: Logger

    def __init__(self, model_accessor: Any = None, log: Logger | None = None, **kwargs: Any):
        # Extra keyword arguments (XOS passed `driver=` and `error_map=`) are accepted and
        # ignored, so that code written for XOS constructs its steps unchanged.
        self.model_accessor = model_accessor
        self.log = log if log is not None else _root_logger.bind(step=type(self).__name__)

    def _require_accessor(self) -> Any:
        if self.model_accessor is None:
            raise RuntimeError(
                f"{type(self).__name__} has no model_accessor: construct it with "
                "model_accessor=... (the runtime does so)"
            )
        return self.model_accessor


ObservedModel = str | type
Observes = ObservedModel | Sequence[ObservedModel] | None


class SyncStep(_PluginBase):
    """An actuator: makes the world match the objects of the models it `observes`.

    The sync engine calls `fetch_pending(deleted=False)` and then `sync_record(obj)` for each
    object that changed since it was last enacted; for soft-deleted objects it calls
    `fetch_pending(deleted=True)` and `delete_record(obj)`. Both must be idempotent: after a
    crash or a timeout the same object is handed over again.
    """

    #: Required: a model name, a model class, or a list of either.
    observes: ClassVar[Observes] = None
    #: At most this many objects of this step in flight at once; None = bounded by the pool.
    concurrency: ClassVar[int | None] = None
    #: Seconds one `sync_record`/`delete_record` call may take; None = the config's default.
    timeout: ClassVar[float | None] = None

    @classmethod
    def observed_model_names(cls) -> list[str]:
        """`observes` as a list of model names, in order and without duplicates.

        A class stands for its `model_name` attribute when it has a non-empty string one,
        otherwise for its `__name__`. Raises `TypeError` for anything else.
        """
        observes = cls.observes
        if observes is None:
            return []
        items: Iterable[object]
        if isinstance(observes, str | type):
            items = [observes]
        elif isinstance(observes, Iterable):
            items = observes
        else:
            items = [observes]  # reported as a bad item below
        names: list[str] = []
        for item in items:
            name = _model_name_of(item)
            if name is None:
                raise TypeError(
                    f"{cls.__qualname__}.observes must be a model name, a model class or a "
                    f"list of either, not {item!r}"
                )
            if name not in names:
                names.append(name)
        return names

    def fetch_pending(self, deleted: bool) -> list[Any]:
        """The objects to sync (`deleted=False`) or to delete (`deleted=True`).

        The default asks the accessor for the pending objects of the observed models; override
        only with reason (the default query knows about backoff, dependencies and claims).
        """
        return list(
            self._require_accessor().fetch_pending(self.observed_model_names(), deleted=deleted)
        )

    def sync_record(self, obj: Any) -> None:
        """Make the world match `obj`. The default does nothing."""

    def delete_record(self, obj: Any) -> None:
        """Remove what `obj` made in the world; the row is purged afterwards. Default: nothing."""

    # Optional hook, deliberately not defined here so that the engine can tell whether a step
    # has one: `after_sync_save(self, obj)`, called after the success has been saved.


def _model_name_of(item: object) -> str | None:
    if isinstance(item, str):
        return item or None
    if isinstance(item, type):
        model_name = getattr(item, "model_name", None)
        return model_name if isinstance(model_name, str) and model_name else item.__name__
    return None


def _to_headers(value: Iterable[tuple[str, bytes]] | None) -> tuple[tuple[str, bytes], ...]:
    return tuple((str(k), v) for k, v in value) if value else ()


@attrs.frozen
class Event:
    """One message handed to `EventStep.process_event`.

    `value` and `key` are the raw bytes of the message (None when it has none); `timestamp` is
    the message time in Unix epoch seconds (None when the bus does not say); `partition` and
    `offset` locate it on the bus (None on a bus that has no such notion); `headers` are
    `(name, bytes)` pairs in order.
    """

    topic: str
    key: bytes | None = None
    value: bytes | None = None
    timestamp: float | None = None
    partition: int | None = None
    offset: int | None = None
    headers: tuple[tuple[str, bytes], ...] = attrs.field(default=(), converter=_to_headers)

    def json(self) -> Any:
        """`value` decoded as JSON (the form XOS events take); ValueError if it is not JSON."""
        if self.value is None:
            raise ValueError(f"event on topic {self.topic!r} has no value")
        return json.loads(self.value)


def _event_maker() -> Callable[..., Event]:
    # The slots' own setters: a frozen attrs class's `__init__` goes through
    # `object.__setattr__` by name for each field, which costs about a third more, and it
    # converts `headers` even when there are none.
    new = object.__new__
    setters = [Event.__dict__[a.name].__set__ for a in attrs.fields(Event)]
    topic, key, value, timestamp, partition, offset, headers = setters

    def make(
        t: str,
        k: bytes | None,
        v: bytes | None,
        ts: float | None,
        p: int | None,
        o: int | None,
        h: Iterable[tuple[str, bytes]] | None = (),
    ) -> Event:
        event = new(Event)
        topic(event, t)
        key(event, k)
        value(event, v)
        timestamp(event, ts)
        partition(event, p)
        offset(event, o)
        headers(event, _to_headers(h) if h else ())
        return event

    return make


#: `Event(topic, key, value, timestamp, partition, offset, headers)`: the same event, made in
#: half the time when it has no headers (the usual case): for the buses, one per message.
make_event = _event_maker()


class EventStep(_PluginBase):
    """Handles the messages of some topics of the event bus, one `process_event` per message.

    Set exactly one of `topics` (a list of names) and `pattern` (a regular expression over
    topic names).
    """

    #: The kind of bus the step listens on; the runtime implements "kafka".
    technology: ClassVar[str] = "kafka"
    #: Topics to subscribe to (a list, never a bare string).
    topics: ClassVar[list[str]] = []
    #: A regular expression selecting the topics to subscribe to.
    pattern: ClassVar[str | None] = None

    @classmethod
    def subscription_error(cls) -> str | None:
        """Why the step's subscription is unusable, or None when it is fine."""
        topics, pattern = cls.topics, cls.pattern
        if isinstance(topics, str):
            return f"topics must be a list of topic names, not the string {topics!r}"
        if topics and pattern:
            return "sets both topics and pattern; set exactly one"
        if not topics and not pattern:
            return "sets neither topics nor pattern; set exactly one"
        if topics and not all(isinstance(t, str) and t for t in topics):
            return f"topics must be non-empty strings, not {list(topics)!r}"
        if pattern is not None and not isinstance(pattern, str):
            return f"pattern must be a string, not {pattern!r}"
        return None

    def process_event(self, event: Event) -> None:
        """Handle one message. The default logs a warning: an event step must override it."""
        self.log.warning(
            "{} does not override process_event; event on {} dropped",
            type(self).__name__,
            event.topic,
        )


class PullStep(_PluginBase):
    """Brings state from the world into the models: `pull_records()` every `interval` seconds."""

    #: Seconds between the start of one call and the next.
    interval: ClassVar[float] = 5
    #: Seconds one `pull_records` call may take; None = the config's `pull.timeout`. A call
    #: over it is abandoned, and the step is not called again until that call has returned.
    timeout: ClassVar[float | None] = None

    def pull_records(self) -> None:
        """Read the world and create or update objects. The default does nothing."""
        self.log.debug("{} does not override pull_records", type(self).__name__)


class ModelPolicy(_PluginBase):
    """Reacts to changes of the objects of `model_name` (and of its sub-models).

    Handlers are optional and looked up by name, so the base class defines none of them:
    `handle_create(self, obj)`, `handle_update(self, obj)`, `handle_delete(self, obj)` and
    `after_policy_save(self, obj)`. The policy engine calls a handler only when the class
    has it (`getattr(policy, "handle_create", None)`); `handles(action)` says the same.
    """

    #: The model this policy polices; it also applies to the model's sub-models.
    model_name: ClassVar[str | None] = None

    def __init__(self, model_accessor: Any = None, log: Logger | None = None, **kwargs: Any):
        super().__init__(model_accessor, log, **kwargs)
        #: The same logger as `log`; XOS policies used this name.
        self.logger = self.log

    @classmethod
    def handles(cls, action: str) -> bool:
        """Whether the policy has a handler for `action` ("create", "update" or "delete")."""
        if action not in POLICY_ACTIONS:
            raise ValueError(f"unknown policy action {action!r}; expected one of {POLICY_ACTIONS}")
        return callable(getattr(cls, f"handle_{action}", None))


#: The XOS name of the policy base class.
Policy = ModelPolicy
