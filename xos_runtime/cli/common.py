"""What every command does first: read the config, set up logging, build the runtime."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

import attrs
from loguru import logger

from xos_runtime.config import Settings, configure_logging, load_config
from xos_runtime.exceptions import ConfigError
from xos_runtime.host import Runtime

_QUIET_LEVELS = {"TRACE", "DEBUG"}


def settings_for(
    args: argparse.Namespace, *, quiet: bool, stream: TextIO | None = None
) -> Settings:
    """The settings, with logging set up; `quiet` keeps INFO logs off a command's output;
    `stream` replaces standard error as the log's terminal (`run`'s progress bar).

    What reading the config logs (a legacy XOS key ignored, a folder found elsewhere, at
    DEBUG) is held until the config's own logging is set up, then logged at its level: at
    the default INFO it is not shown, with `logging.level: DEBUG` it is.
    """
    held: list[tuple[str, str]] = []
    logger.remove()
    sink = logger.add(
        lambda m: held.append((m.record["level"].name, m.record["message"])),
        level=0,
        format="{message}",
    )
    configured = False
    try:
        settings = load_config(args.config)
        log = settings.logging
        if quiet and log.dict_config is None and log.level not in _QUIET_LEVELS:
            log = attrs.evolve(log, level="WARNING")
        logger.remove(sink)
        try:
            configure_logging(log, stream=stream)
        except ConfigError as exc:
            raise ConfigError(exc.message, file=settings.source, key=exc.key) from exc
        configured = True
    finally:
        if not configured:  # the config is at fault: loguru's own default set-up again
            logger.remove()
            logger.add(sys.stderr)
        for level, message in held:
            logger.log(level, "{}", message)
    return settings


def load_runtime(
    args: argparse.Namespace,
    *,
    quiet: bool = True,
    dry_run: bool = False,
    works: bool = False,
    stream: TextIO | None = None,
    models_optional: bool = False,
    keep_stored_models: bool = False,
) -> Runtime:
    """The runtime of the command's config. A command that only looks at the store (not
    `works`: `status`, `objects`, `graph`, `plugins`) starts without a broken plugin, with
    a warning; `run` and `check` (`works`) stop with exit 2, as the config says.
    `models_optional`: see `Runtime.load`."""
    why = None if works else f"`{args.command}` goes on without it; `run` and `check` stop here"
    settings = settings_for(args, quiet=quiet, stream=stream)
    return Runtime.load(
        settings,
        dry_run=dry_run,
        skip_broken_why=why,
        models_optional=models_optional,
        keep_stored_models=keep_stored_models,
    )


def is_core(settings: Settings) -> bool:
    """Whether the config's store is a remote core (`accessor.endpoint: http(s)://...`)."""
    return settings.accessor.remote


def load_accessor(args: argparse.Namespace) -> tuple[Any, Callable[[], None]]:
    """For commands that only read and change objects (`objects`, scripts): the accessor of
    the command's config, and what closes it. Over a core, the remote accessor (the models
    are the core's; no plugin is loaded); else the runtime's, as `load_runtime` opens it."""
    settings = settings_for(args, quiet=True)
    if is_core(settings):
        from xos_runtime.store.remote import open_settings

        remote = open_settings(settings)
        return remote, remote.close
    why = f"`{args.command}` goes on without it; `run` and `check` stop here"
    runtime = Runtime.load(settings, skip_broken_why=why)
    return runtime.accessor, runtime.close


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def local_time(ts: float | None) -> str:
    """An epoch time as local `YYYY-MM-DD HH:MM:SS`; "-" for none (0 means never)."""
    if not ts:
        return "-"
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
