"""The logger of an event step's instance, bound on first use.

The event engine makes a step instance per message, with a logger bound to the step, the
topic, the partition and the offset. loguru's `bind` makes a new logger (a merged dict and a
new object) each time, which costs about as much as the rest of the engine's work for a
message, while most calls of `process_event` log nothing. `bind_on_use` gives a logger that
does the binding the first time it is used: it is a loguru `Logger` like any other (same
methods, `isinstance` holds), and what it logs carries the same extra fields.

It relies on how loguru 0.7 keeps a logger's state (`_core`, `_options`); with a loguru that
keeps it otherwise, `bind_on_use` is plain `bind`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["bind_on_use"]

_Logger: Any = type(logger)


class _BoundOnUse(_Logger):
    """`base.bind(**extra)`, made on first use (loguru reads `_options` for every call)."""

    def __init__(self, base: Logger, extra: dict[str, Any]):  # no super(): that binds now
        self._core = base._core  # type: ignore[attr-defined]
        self._base = base
        self._extra = extra

    @functools.cached_property
    def _options(self) -> tuple[Any, ...]:
        *options, extra = self._base._options  # type: ignore[attr-defined]
        return (*options, {**extra, **self._extra})


def _works() -> bool:
    """Whether loguru keeps a logger's state as `_BoundOnUse` expects."""
    try:
        options = logger._options  # type: ignore[attr-defined]
        lazy = _BoundOnUse(logger, {"probe": 1})
        return (
            isinstance(options, tuple)
            and isinstance(options[-1], dict)
            and lazy._options == logger.bind(probe=1)._options  # type: ignore[attr-defined]
        )
    except Exception:
        return False


def _bind_now(base: Logger, extra: dict[str, Any]) -> Logger:
    return base.bind(**extra)


#: `bind_on_use(base, extra)`: `base.bind(**extra)`, bound when it is first used.
bind_on_use: Callable[[Logger, dict[str, Any]], Logger] = _BoundOnUse if _works() else _bind_now
