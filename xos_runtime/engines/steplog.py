"""The logger a step gets for one call: bound to the call, the binding made on first use.

Every call of a step or policy gets `self.log`, a loguru logger bound to what the call is
about (step, model and id; for an event, topic, partition and offset), so that its lines
say which object or message they concern. loguru's `bind` makes a new logger (a merged dict
and a new object) each time, which costs more than the call of a trivial step, while most
calls log nothing. `lazy_log` gives a logger that does the binding the first time it is
used: a loguru `Logger` like any other (same methods, `isinstance` holds), whose lines carry
the same extra fields.

It relies on how loguru 0.7 keeps a logger's state (`_core`, `_options`); with a loguru that
keeps it otherwise (checked once, at import), `lazy_log` is plain `bind`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["lazy_log"]

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


_LAZY = _works()


def lazy_log(base: Logger, **extra: Any) -> Logger:
    """`base.bind(**extra)`, bound when it is first used."""
    if _LAZY:
        lazy: Logger = _BoundOnUse(base, extra)
        return lazy
    return base.bind(**extra)
