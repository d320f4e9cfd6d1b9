"""The logger a step gets for one call: bound to the step, model and id, made on first use.

Every call of a step or policy gets `self.log`, a loguru logger bound to what the call is
about, so that its lines say which object they concern. Binding costs more than the call of
a trivial step (loguru copies its options and the extra fields), and most calls log
nothing: `LazyLog` binds only when the step first uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["LazyLog", "lazy_log"]


class LazyLog:
    """Stands for `base.bind(**extra)`, which it makes when an attribute is first asked."""

    __slots__ = ("_base", "_bound", "_extra")

    def __init__(self, base: Logger, extra: dict[str, Any]):
        self._base = base
        self._extra = extra
        self._bound: Logger | None = None

    def __getattr__(self, name: str) -> Any:
        bound = self._bound
        if bound is None:
            bound = self._bound = self._base.bind(**self._extra)
        return getattr(bound, name)


def lazy_log(base: Logger, **extra: Any) -> Logger:
    """A `LazyLog` typed as the logger it stands for."""
    return cast("Logger", LazyLog(base, extra))
