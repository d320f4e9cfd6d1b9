"""`multistructlog`: `create_logger(config)` giving structlog-style loggers over loguru.

The logging config XOS passes (a `logging` dictConfig) is not applied here: xos-runtime
configures its log sinks from the config file's `logging` section itself.
"""

from __future__ import annotations

from typing import Any

from loguru import logger as _loguru
from xos_runtime_xos_compat.structlogger import StructLogger

__all__ = ["StructLogger", "create_logger"]


def create_logger(_config: Any = None, level: Any = None) -> StructLogger:
    """A structlog-style logger (`log.info("msg", key=value)`, `warn`, `exception`)."""
    return StructLogger(_loguru)
