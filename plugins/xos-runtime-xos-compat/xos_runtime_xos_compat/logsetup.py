"""The service's `logging` dictConfig, read as `multistructlog.create_logger` read it.

XOS services ship a dictConfig that names only the logger `multistructlog`
(`loggers: {multistructlog: {handlers: [console], level: DEBUG}}`). XOS never applied it as
written: `create_logger` replaced `loggers` by one root logger (`''`) holding every handler at
level NOTSET whenever `''` was missing, and gave each handler without a formatter a
structured one. Applied as written (xos-runtime does, for any dictConfig), the root logger
has no handler and every line of the service and of the runtime is lost. So when the
runtime starts (`xos_runtime_startup`), the compat plugin re-applies the service's dictConfig
the way multistructlog did; a config that names `''` itself is left as it is.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["STRUCTURED_FORMAT", "apply_service_logging", "as_multistructlog_config"]

#: The line a handler without a formatter writes (multistructlog's `structured` renderer
#: showed time, level and the message with its key=value pairs; the message holds those).
STRUCTURED_FORMAT = "%(asctime)s [%(levelname)-8s] %(name)s: %(message)s"


def as_multistructlog_config(dict_config: dict[str, Any]) -> dict[str, Any]:
    """`dict_config` as multistructlog turned it into what it applied (a copy).

    Handlers without a formatter get `structured`; without a `''` logger, the loggers become
    one root logger with every handler at NOTSET (and the `kafka` client library at WARNING);
    `disable_existing_loggers` defaults to
    False so that the runtime's own loggers keep writing.
    """
    config = copy.deepcopy(dict_config)
    formatters = config.setdefault("formatters", {})
    formatters.setdefault("structured", {"format": STRUCTURED_FORMAT})
    handlers = config.setdefault(
        "handlers", {"default": {"class": "logging.StreamHandler", "level": "DEBUG"}}
    )
    for handler in handlers.values():
        if isinstance(handler, dict):
            handler.setdefault("formatter", "structured")
    loggers = config.get("loggers")
    if not isinstance(loggers, dict) or "" not in loggers:
        config["loggers"] = {
            "": {"handlers": list(handlers), "level": "NOTSET", "propagate": True},
            # XOS's Kafka client (confluent-kafka) did not log through Python logging; the
            # runtime's (kafka-python) does, a line per request at DEBUG.
            "kafka": {"level": "WARNING"},
        }
    config.setdefault("disable_existing_loggers", False)
    return config


def apply_service_logging(settings: Any) -> bool:
    """Re-apply the service's dictConfig as multistructlog did; False when there is none or
    it names the root logger itself (then the runtime's set-up stands)."""
    logging_settings: Any = getattr(settings, "logging", None)
    dict_config = getattr(logging_settings, "dict_config", None)
    if not isinstance(dict_config, dict):
        return False
    loggers = dict_config.get("loggers")
    if isinstance(loggers, dict) and "" in loggers:
        return False
    import attrs

    from xos_runtime.config import configure_logging

    configure_logging(
        attrs.evolve(logging_settings, dict_config=as_multistructlog_config(dict_config))
    )
    return True
