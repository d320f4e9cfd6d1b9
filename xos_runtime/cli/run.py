"""`xos-runtime run`: the host process, `--once`, or `--until-idle`.

Its arguments are declared in `cli.commands`; this module is imported when `run` runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TextIO, cast

from loguru import logger

from xos_runtime.cli.common import load_runtime
from xos_runtime.cli.progress import REDRAW_EVERY, TerminalBar
from xos_runtime.host import Runtime


def handle(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.until_idle:
        print("xos-runtime run: error: --timeout goes with --until-idle", file=sys.stderr)
        return 2
    bar = _bar(args)
    try:
        # the bar is the log's terminal: it writes what a text stream is asked to
        runtime = load_runtime(args, quiet=False, works=True, stream=cast("TextIO", bar))
    except BaseException:
        if bar is not None:
            bar.close()
        raise
    if bar is not None:
        if runtime.settings.logging.progress and runtime.settings.logging.format == "text":
            runtime.progress, runtime.progress_every = bar, REDRAW_EVERY
        else:
            bar = None  # the log still goes through it, and it draws nothing
    try:
        return _run(args, runtime)
    finally:
        if bar is not None:
            bar.close()


def _bar(args: argparse.Namespace) -> TerminalBar | None:
    """The progress bar, for `--until-idle` on a terminal (not with `--no-progress`)."""
    if not (args.until_idle and args.progress and sys.stderr.isatty()):
        return None
    return TerminalBar(sys.stderr)


def _run(args: argparse.Namespace, runtime: Runtime) -> int:
    try:
        runtime.register()  # before any plugin starts: a refused run has done nothing
    except BaseException:
        runtime.close()
        raise
    try:
        runtime.startup()
        if not args.once and not args.until_idle:
            return runtime.serve()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # as `serve` does: stop taking work, let running calls finish, exit normally
            signal.signal(sig, lambda *_: runtime.request_stop())
        summary = runtime.run_once() if args.once else runtime.run_until_idle(args.timeout)
        logger.info("{}", summary.describe())
    finally:
        runtime.shutdown()
        runtime.close()
        runtime.log_leftovers()
    if summary.held:
        # the last line: what this run could not do, and who has it
        logger.warning("{}", summary.describe_held())
    return summary.exit_code
