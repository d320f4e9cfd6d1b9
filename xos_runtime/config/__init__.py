"""Configuration: typed settings, loading them from YAML, and setting up logging.

The lowest layer of xos-runtime: it imports nothing of the runtime but `exceptions`.

The names below are imported from their modules on first use (PEP 562 `__getattr__`), so
that the command line can name `CONFIG_ENV_VAR` in its help without loading attrs, PyYAML
and loguru: `xos-runtime --help` stays a bare interpreter start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xos_runtime.lazy import lazy_names

if TYPE_CHECKING:
    from .loader import load_config, loaded_config_file, settings_from_dict
    from .logging import configure_logging
    from .settings import (
        LEGACY_KEYS,
        LOG_LEVELS,
        AccessorSettings,
        BackoffSettings,
        CoreSettings,
        EventBusSettings,
        EventSettings,
        LoggingSettings,
        MetricsSettings,
        PluginSettings,
        PolicySettings,
        PullSettings,
        Settings,
        SyncSettings,
        default_store_url,
        topic_name_error,
    )

__all__ = [
    "CONFIG_ENV_VAR",
    "LEGACY_KEYS",
    "LOG_LEVELS",
    "AccessorSettings",
    "BackoffSettings",
    "CoreSettings",
    "EventBusSettings",
    "EventSettings",
    "LoggingSettings",
    "MetricsSettings",
    "PluginSettings",
    "PolicySettings",
    "PullSettings",
    "Settings",
    "SyncSettings",
    "configure_logging",
    "default_store_url",
    "load_config",
    "loaded_config_file",
    "settings_from_dict",
    "topic_name_error",
]

#: The environment variable naming the config file when none is passed (as in XOS).
CONFIG_ENV_VAR = "XOS_CONFIG_FILE"

#: The module of every other public name (relative to this package).
_MODULES = {
    "load_config": ".loader",
    "loaded_config_file": ".loader",
    "settings_from_dict": ".loader",
    "configure_logging": ".logging",
    **dict.fromkeys(
        (
            "LEGACY_KEYS",
            "LOG_LEVELS",
            "AccessorSettings",
            "BackoffSettings",
            "CoreSettings",
            "EventBusSettings",
            "EventSettings",
            "LoggingSettings",
            "MetricsSettings",
            "PluginSettings",
            "PolicySettings",
            "PullSettings",
            "Settings",
            "SyncSettings",
            "default_store_url",
            "topic_name_error",
        ),
        ".settings",
    ),
}

if not TYPE_CHECKING:  # mypy reads the imports above; a `__getattr__` would hide typos
    __getattr__, __dir__ = lazy_names(__name__, _MODULES, __all__)
