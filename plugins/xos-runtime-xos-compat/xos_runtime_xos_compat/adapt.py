"""How XOS-written plugin classes are fitted to the way xos-runtime calls them.

xos-runtime constructs every plugin as `Cls(model_accessor=..., log=...)` and calls
`fetch_pending(deleted=...)` and `process_event(Event)`. XOS plugins were written against
other calls: pull steps define `__init__(self, model_accessor)` (no `log`), Kubernetes' sync
step overrides `fetch_pending(self, deletion)`, event steps `json.loads(event.value)` where
value was text, and every plugin logs structlog-style. `XOSPluginMixin.__init_subclass__`
adapts each subclass once, when its module is imported, so the runtime's engines stay as they
are ("thin adapters, not a second engine").
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import attrs

from xos_runtime_xos_compat.structlogger import as_struct_logger

__all__ = ["XOSKafkaMessage", "XOSPluginMixin", "adapt_fetch_pending", "adapt_process_event"]

#: The attributes holding a logger: whatever is assigned becomes structlog-style.
_LOGGER_NAMES = frozenset({"log", "logger"})


def _accepts(func: Callable[..., Any]) -> tuple[set[str], bool]:
    params = inspect.signature(func).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _adapt_init(init: Callable[..., None]) -> Callable[..., None]:
    """An `__init__` that passes on only the keywords `init` takes; `log` is set afterwards."""
    names, takes_any = _accepts(init)
    if takes_any:
        return init

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        accepted = {k: v for k, v in kwargs.items() if k in names}
        init(self, *args, **accepted)
        if "log" in kwargs and "log" not in names and kwargs["log"] is not None:
            self.log = kwargs["log"]
        if "model_accessor" in kwargs and getattr(self, "model_accessor", None) is None:
            self.model_accessor = kwargs["model_accessor"]

    __init__._xos_adapted = True  # type: ignore[attr-defined]
    return __init__


def adapt_fetch_pending(func: Callable[..., Any]) -> Callable[..., Any]:
    """XOS's `fetch_pending(self, deletion=False)`, callable as `fetch_pending(deleted=...)`."""
    names, takes_any = _accepts(func)
    if "deleted" in names or takes_any:
        return func

    @functools.wraps(func)
    def fetch_pending(self: Any, deleted: bool = False) -> Any:
        return func(self, deleted)

    return fetch_pending


@attrs.frozen
class XOSKafkaMessage:
    """The message XOS handed to `process_event`: `value` and `key` as text."""

    topic: str
    key: str | None
    value: str | None
    timestamp: float | None
    #: The runtime's own `xos_runtime.Event` (partition, offset, headers, raw bytes).
    event: Any = None


def _text(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def adapt_process_event(func: Callable[..., Any]) -> Callable[..., Any]:
    """A `process_event` that receives an `XOSKafkaMessage` built from the runtime's event."""

    @functools.wraps(func)
    def process_event(self: Any, event: Any) -> Any:
        if not isinstance(event, XOSKafkaMessage):
            event = XOSKafkaMessage(
                topic=event.topic,
                key=_text(event.key),
                value=_text(event.value),
                timestamp=event.timestamp,
                event=event,
            )
        return func(self, event)

    process_event._xos_adapted = True  # type: ignore[attr-defined]
    return process_event


class XOSPluginMixin:
    """Shared by the four XOS base classes: structlog-style loggers and adapted subclasses."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LOGGER_NAMES:
            value = as_struct_logger(value)
        object.__setattr__(self, name, value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_xos_adapted", False):
            type.__setattr__(cls, "__init__", _adapt_init(init))
        fetch = cls.__dict__.get("fetch_pending")
        if fetch is not None:
            type.__setattr__(cls, "fetch_pending", adapt_fetch_pending(fetch))
        handler = cls.__dict__.get("process_event")
        if handler is not None and not getattr(handler, "_xos_adapted", False):
            type.__setattr__(cls, "process_event", adapt_process_event(handler))
