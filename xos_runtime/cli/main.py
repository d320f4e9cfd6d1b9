"""`xos-runtime`: the command line over the host (contract section 7).

Exit codes: 0 success; 1 objects left in error, an expired `--timeout` or a failed check;
2 bad usage, bad configuration, bad input, or start-up stopped by a plugin.

This module and `cli.commands` import argparse and little else: the module of the command
that runs (and with it the host, SQLAlchemy, networkx, loguru, ...) is imported on dispatch.
`tests/cli/test_startup.py` keeps it so.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from xos_runtime import __version__
from xos_runtime.cli import commands
from xos_runtime.config import CONFIG_ENV_VAR
from xos_runtime.exceptions import PluginError, XosRuntimeError

#: Exit code of an unexpected exception (contract codes are 0, 1 and 2).
INTERNAL_ERROR = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


#: Said after a broken plugin stopped `run` or `check`.
BROKEN_PLUGIN_HINT = (
    "xos-runtime: to start without it: `plugins: {skip_broken: true}`, or leave it out with "
    "`plugins: {disabled: [NAME]}` (or name the plugins to run in `plugins: {enabled: [...]}`)"
)


def config_option(parser: argparse.ArgumentParser, *, inner: bool = False) -> None:
    """`-C FILE`; `inner` for a sub-command's own copy, which must not reset the outer one."""
    parser.add_argument(
        "-C",
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS if inner else os.environ.get(CONFIG_ENV_VAR),
        help=f"the configuration file (default: ${CONFIG_ENV_VAR})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="xos-runtime",
        description="Runs XOS synchronizer plugins: sync steps, policies, pull and event steps.",
    )
    parser.add_argument("--version", action="version", version=f"xos-runtime {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    commands.register(sub, config_option)
    return parser


def _discard_stdout(own_process: bool) -> None:
    """After a closed pipe: what is still buffered for stdout goes nowhere, silently.

    Without this the interpreter's own flush at exit fails again and prints "Exception
    ignored ... BrokenPipeError" (exit 120). Only in a process that is the command's own:
    someone else's stdout is not ours to replace.
    """
    if not own_process:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code.

    `argv` None: the process's own command line (the console script, `python -m
    xos_runtime`), and the process is the command's: see `commands.Handler.load`.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "config", None):
        parser.error(f"no configuration file: pass -C FILE or set {CONFIG_ENV_VAR}")
    own_process = argv is None
    try:
        handle = args.handler.load(own_process=own_process)
        code: int = handle(args)
        sys.stdout.flush()  # here, where a closed pipe is still ours to handle
        return code
    except BrokenPipeError:
        # `xos-runtime status | head`: the reader has all it wanted; nothing is wrong.
        _discard_stdout(own_process)
        return 0
    except XosRuntimeError as exc:
        print(f"xos-runtime: error: {exc}", file=sys.stderr)
        if isinstance(exc, PluginError):
            print(BROKEN_PLUGIN_HINT, file=sys.stderr)
        return int(getattr(args, "error_exit", 2))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Not a diagnosis of bad input: a bug, or something the runtime does not handle yet.
        # Exit 3 keeps it apart from 1 (objects in error) and 2 (bad input or start-up).
        from loguru import logger  # here, not at the top: --help need not load loguru

        logger.opt(exception=exc).debug("internal error")
        print(
            f"xos-runtime: internal error: {type(exc).__name__}: {exc} "
            "(logging.level DEBUG shows the traceback)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
