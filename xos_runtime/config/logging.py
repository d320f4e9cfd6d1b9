"""Setting up logging from `LoggingSettings`: loguru sinks, and stdlib `logging` routed in.

The runtime logs with loguru. Libraries (kafka, sqlalchemy, stevedore...) log with the
standard `logging` module; an `InterceptHandler` on the root logger hands their records to
loguru, so that everything is written once, in one format, to the same sinks.

An XOS logging dictConfig (`LoggingSettings.dict_config`) turns this around when it can be
applied: the stdlib handlers it configures receive everything, loguru's records included.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger

from xos_runtime.exceptions import ConfigError

from .settings import LOG_LEVELS, LoggingSettings

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["QUIET_LIBRARIES", "InterceptHandler", "configure_logging"]

#: Loggers of the libraries the runtime uses. Their INFO lines are about the library, not
#: the operator's objects, so they are kept at WARNING (or the configured level, if higher)
#: whatever `logging.level` says; a logging dictConfig may set them otherwise. Not
#: kafka-python's `kafka`: while a Kafka bus is open its records are passed on at DEBUG,
#: all of them, and the bus tells an outage itself (`engines/events/kafka.py`), which a
#: level set here would stop.
QUIET_LIBRARIES = (
    "aiokafka",
    "sqlalchemy",
    "stevedore",
    "pluggy",
    "psycopg",
    "urllib3",
    "asyncio",
)

_TEXT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan> | <level>{message}</level>"
)
_JSON_KEY = "_xos_json"  # where the JSON line is put for the format template

# Set while a loguru record is being handed to stdlib logging, so that an InterceptHandler
# met on the way does not hand it back (an endless loop otherwise).
_forwarding: contextvars.ContextVar[bool] = contextvars.ContextVar("_forwarding", default=False)


def configure_logging(settings: LoggingSettings, *, stream: TextIO | None = None) -> None:
    """Replace the current logging set-up by the one `settings` describes.

    * loguru: every sink is removed; one is added on `stream` (default: ``sys.stderr`` at
      the time of the call) and one on `settings.file` if set (rotated by
      `settings.rotation`), both at `settings.level` in `settings.format`;
    * stdlib `logging`: the root logger's handlers are replaced by one `InterceptHandler`
      and its level set to `settings.level`;
    * with `settings.dict_config`: it is applied with `logging.config.dictConfig` and
      loguru's records are sent to the stdlib handlers it configures. If it cannot be
      applied (e.g. it names ``multistructlog`` handlers that are not installed), the above
      is done at the root level it names, and a warning says why.

    Calling it again replaces the previous set-up, so nothing is written twice.
    """
    logger.remove()
    if settings.dict_config is not None:
        # imported here: only a dictConfig needs it, and it brings in socketserver and more
        import logging.config as logging_config

        try:
            logging_config.dictConfig(settings.dict_config)
        except Exception as exc:  # never stop the runtime because of its logging
            level = _root_level(settings.dict_config) or settings.level
            _install(settings, level, stream)
            logger.warning(
                "logging.dict_config could not be applied ({}); "
                "using the runtime's own logging at level {}",
                exc,
                level,
            )
            return
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, InterceptHandler)]:
            root.removeHandler(handler)
        logger.add(_ToStdlib(), level=0, format="{message}")
        return
    _install(settings, settings.level, stream)


def _install(settings: LoggingSettings, level: str, stream: TextIO | None) -> None:
    fmt = _json_format if settings.format == "json" else _text_format
    colorize = None if settings.format == "text" else False
    # diagnose=False: a traceback must not print local variables (passwords, tokens).
    logger.add(
        stream if stream is not None else sys.stderr,
        level=level,
        format=fmt,
        colorize=colorize,
        backtrace=False,
        diagnose=False,
    )
    if settings.file is not None:
        try:
            logger.add(
                settings.file,
                level=level,
                format=fmt,
                colorize=False,
                rotation=settings.rotation,
                encoding="utf-8",
                backtrace=False,
                diagnose=False,
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot write the log file {settings.file!r}: {exc.strerror or exc}",
                key="logging.file",
            ) from exc
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(InterceptHandler())
    root.setLevel(logger.level(level).no)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


class InterceptHandler(logging.Handler):
    """A stdlib `logging` handler that hands each record to loguru.

    The loguru record keeps the stdlib logger's name and the caller's file and line.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if _forwarding.get():
            return
        level: str | int
        try:
            level = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Find the caller of the stdlib logging call, for loguru's file/function/line.
        frame, depth = sys._getframe(1), 1
        while frame.f_back is not None and frame.f_code.co_filename == logging.__file__:
            frame, depth = frame.f_back, depth + 1
        exc_info = record.exc_info if record.exc_info and record.exc_info[0] else None

        def rename(loguru_record: Record) -> None:
            loguru_record["name"] = record.name

        logger.patch(rename).opt(depth=depth, exception=exc_info).log(level, record.getMessage())


class _ToStdlib(logging.Handler):
    """A loguru sink (loguru accepts stdlib handlers) that passes records to stdlib logging."""

    def emit(self, record: logging.LogRecord) -> None:
        target = logging.getLogger(record.name if record.name != "None" else None)
        if not target.isEnabledFor(record.levelno):
            return
        token = _forwarding.set(True)
        try:
            target.handle(record)
        finally:
            _forwarding.reset(token)


def _text_format(record: Record) -> str:
    extras = "".join(
        f" {key}={{extra[{key}]}}"
        for key in record["extra"]
        if key.isidentifier() and not key.startswith("_")
    )
    return _TEXT + extras + "\n{exception}"


def _json_format(record: Record) -> str:
    line: dict[str, Any] = {
        "time": record["time"].isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "name": record["name"],
        "message": record["message"],
    }
    for key, value in record["extra"].items():
        if key != _JSON_KEY:
            line[f"extra.{key}" if key in line else key] = value
    if record["exception"] is not None:
        kind, value, tb = record["exception"]
        line["exception"] = "".join(traceback.format_exception(kind, value, tb))
    record["extra"][_JSON_KEY] = json.dumps(
        line, default=str, ensure_ascii=False, separators=(",", ":")
    )
    return "{extra[" + _JSON_KEY + "]}\n"


def _root_level(dict_config: Mapping[str, Any]) -> str | None:
    """The root logger's level a dictConfig names, as a loguru level name (None if none)."""
    root = dict_config.get("root")
    loggers = dict_config.get("loggers")
    candidates = [
        root.get("level") if isinstance(root, Mapping) else None,
        loggers.get("", {}).get("level")
        if isinstance(loggers, Mapping) and isinstance(loggers.get(""), Mapping)
        else None,
    ]
    for level in candidates:
        name = logging.getLevelName(level) if isinstance(level, int) else level
        if isinstance(name, str):
            name = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name.upper(), name.upper())
            if name in LOG_LEVELS:
                return name
    return None
