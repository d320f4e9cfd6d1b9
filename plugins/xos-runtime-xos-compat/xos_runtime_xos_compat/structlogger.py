"""Structlog-style loggers over loguru: what `multistructlog.create_logger` returns.

XOS plugins log as `log.info("message", key=value)` (structlog), sometimes with `%` arguments,
and call `log.warn`, `log.exception` and `log.new(...)`/`log.bind(...)`. A loguru logger would
treat the keywords as `str.format` arguments (a message holding braces would break), so this
adapter does the `%` formatting itself and passes the keywords to loguru as bound `extra`
values, never through `format`.
"""

from __future__ import annotations

from typing import Any

from loguru import logger as _loguru

__all__ = ["StructLogger", "as_struct_logger"]


class StructLogger:
    """A structlog-like face over a loguru logger: `info(msg, *args, **kv)` and friends."""

    def __init__(self, logger: Any = None, **context: Any):
        self._logger = logger if logger is not None else _loguru
        self._context = context

    def bind(self, **kv: Any) -> StructLogger:
        """A logger with `kv` added to every line (structlog `bind`)."""
        return StructLogger(self._logger, **{**self._context, **kv})

    def new(self, **kv: Any) -> StructLogger:
        """A logger with only `kv` as its context (structlog `new`)."""
        return StructLogger(self._logger, **kv)

    def unbind(self, *keys: str) -> StructLogger:
        return StructLogger(
            self._logger, **{k: v for k, v in self._context.items() if k not in keys}
        )

    def _log(self, level: str, msg: Any, args: tuple[Any, ...], kv: dict[str, Any]) -> None:
        exc_info = kv.pop("exc_info", None)
        text = str(msg)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError):
                text = " ".join([text, *map(str, args)])
        extra = {**self._context, **kv}
        if extra:
            text = text + " " + " ".join(f"{k}={v!r}" for k, v in extra.items())
        target = self._logger.bind(**extra) if extra else self._logger
        target.opt(depth=2, exception=exc_info or None).log(level, text)

    def debug(self, msg: Any = "", *args: Any, **kv: Any) -> None:
        self._log("DEBUG", msg, args, kv)

    def info(self, msg: Any = "", *args: Any, **kv: Any) -> None:
        self._log("INFO", msg, args, kv)

    msg = info

    def warning(self, msg: Any = "", *args: Any, **kv: Any) -> None:
        self._log("WARNING", msg, args, kv)

    #: The deprecated structlog alias that XOS services still call.
    warn = warning

    def error(self, msg: Any = "", *args: Any, **kv: Any) -> None:
        self._log("ERROR", msg, args, kv)

    def critical(self, msg: Any = "", *args: Any, **kv: Any) -> None:
        self._log("CRITICAL", msg, args, kv)

    fatal = critical

    def exception(self, msg: Any = "", *args: Any, **kv: Any) -> None:
        kv.setdefault("exc_info", True)
        self._log("ERROR", msg, args, kv)


def as_struct_logger(value: Any) -> Any:
    """`value` as a `StructLogger` when it is a loguru logger; anything else unchanged."""
    if isinstance(value, StructLogger) or value is None:
        return value
    if isinstance(value, type(_loguru)):  # the runtime's step loggers are loguru's too
        return StructLogger(value)
    return value
