"""Configuration: typed settings, loading them from YAML, and setting up logging.

The lowest layer of xos-runtime: it imports nothing of the runtime but `exceptions`.
"""

from __future__ import annotations

from .loader import CONFIG_ENV_VAR, load_config, settings_from_dict
from .logging import configure_logging
from .settings import (
    LEGACY_KEYS,
    LOG_LEVELS,
    AccessorSettings,
    BackoffSettings,
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
)

__all__ = [
    "CONFIG_ENV_VAR",
    "LEGACY_KEYS",
    "LOG_LEVELS",
    "AccessorSettings",
    "BackoffSettings",
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
    "settings_from_dict",
]
