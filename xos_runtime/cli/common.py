"""What every command does first: read the config, set up logging, build the runtime."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import attrs

from xos_runtime.config import Settings, configure_logging, load_config
from xos_runtime.exceptions import ConfigError
from xos_runtime.host import Runtime

_QUIET_LEVELS = {"TRACE", "DEBUG"}


def settings_for(args: argparse.Namespace, *, quiet: bool) -> Settings:
    """The settings, with logging set up; `quiet` keeps INFO logs off a command's output."""
    settings = load_config(args.config)
    log = settings.logging
    if quiet and log.dict_config is None and log.level not in _QUIET_LEVELS:
        log = attrs.evolve(log, level="WARNING")
    try:
        configure_logging(log)
    except ConfigError as exc:
        raise ConfigError(exc.message, file=settings.source, key=exc.key) from exc
    return settings


def load_runtime(args: argparse.Namespace, *, quiet: bool = True, dry_run: bool = False) -> Runtime:
    return Runtime.load(settings_for(args, quiet=quiet), dry_run=dry_run)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
