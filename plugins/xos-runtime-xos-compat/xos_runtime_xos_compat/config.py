"""`xosconfig.Config`: the service's own config file, read as XOS reads it.

XOS plugins call `Config().get('logging')` at import time (38 modules), sometimes other keys,
and onos-service `Config().get_config_file()`. Which file: the one given to `Config.init()`,
else `$XOS_CONFIG_FILE`, else the file xos-runtime itself loaded last (`xos-runtime run -C
FILE` loads it before any plugin module is imported). Keys are read from the raw YAML, dotted
paths walk nested mappings, and a key the file does not set falls back to XOS's defaults
(`DEFAULT_VALUES`), then None.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import yaml

__all__ = ["DEFAULT_VALUES", "Config"]

#: XOS's defaults for the keys services read without setting them (xosconfig 4.0).
DEFAULT_VALUES: dict[str, Any] = {
    "desired_state": "load",
    "core_version": None,
    "dependency_graph": None,
    "logging": {
        "version": 1,
        "handlers": {"console": {"class": "logging.StreamHandler"}},
        "loggers": {"": {"handlers": ["console"], "level": "DEBUG"}},
    },
    "accessor": {"kind": "grpcapi"},
    "kafka_bootstrap_servers": ["cord-kafka:9092"],
}

_lock = threading.Lock()
_state: dict[str, Any] = {"file": None, "data": None, "override": None}


def _runtime_config_file() -> str | None:
    try:
        from xos_runtime.config import loaded_config_file
    except ImportError:  # an xos-runtime without it
        return None
    return loaded_config_file()


def _read(path: str) -> dict[str, Any]:
    with open(path, "rb") as stream:
        data = yaml.safe_load(stream)
    return data if isinstance(data, dict) else {}


def _walk(data: Any, keys: list[str]) -> tuple[bool, Any]:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return False, None
        data = data[key]
    return True, data


class Config:
    """XOS's process-wide configuration: static methods over one file."""

    @staticmethod
    def init(
        config_file: str | None = None,
        config_schema: str | None = None,
        override_config_file: str | None = None,
    ) -> None:
        """Use `config_file` (XOS entry scripts call this; the schema is not checked here:
        xos-runtime checks the file itself)."""
        with _lock:
            _state["file"] = os.path.abspath(config_file) if config_file else None
            _state["data"] = None
            _state["override"] = override_config_file

    @staticmethod
    def clear() -> None:
        """Forget the file and what was read of it."""
        with _lock:
            _state.update(file=None, data=None, override=None)

    @staticmethod
    def get_config_file() -> str | None:
        """The absolute path of the config file in use, or None when there is none."""
        explicit = _state["file"]
        if explicit:
            return str(explicit)
        path = os.environ.get("XOS_CONFIG_FILE") or _runtime_config_file()
        return os.path.abspath(path) if path else None

    @staticmethod
    def _data() -> dict[str, Any]:
        path = Config.get_config_file()
        with _lock:
            cached = _state["data"]
            if cached is not None and cached[0] == path:
                return dict(cached[1])
            data = _read(path) if path else {}
            override = _state["override"]
            if override and os.path.exists(override):
                data = {**data, **_read(override)}
            _state["data"] = (path, data)
            return data

    @staticmethod
    def get(query: str) -> Any:
        """The value of `query` (`"logging"`, `"accessor.endpoint"`), else XOS's default,
        else None."""
        keys = query.split(".")
        found, value = _walk(Config._data(), keys)
        if found:
            return value
        return _walk(DEFAULT_VALUES, keys)[1]
