"""The commands, their arguments and help, and the handler that runs each one.

Only argparse is needed here: a handler is named by module and function (`Handler`) and its
module is imported when the command runs. So `xos-runtime --help`, a usage error or the
parsing of any command costs a bare interpreter start, and a command pays only for what it
uses (`run` never imports the `objects` code, `objects` never the engines' HTTP server).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import math
import sys
from collections.abc import Callable

__all__ = ["Handler", "register"]

ConfigOption = Callable[..., None]

_WITH_ID = ("show", "update", "delete")


class Handler:
    """A command's handler, `module:function`, imported when the command runs.

    Called with the parsed arguments; returns the exit code.
    """

    __slots__ = ("function", "module")

    def __init__(self, module: str, function: str):
        self.module = module
        self.function = function

    def load(self, *, own_process: bool = False) -> Callable[[argparse.Namespace], int]:
        """The handler function; its module (and the libraries it needs) imported now.

        `own_process`: this process runs this one command and exits (the console script,
        `python -m xos_runtime`). Then the import runs with the cyclic garbage collector
        paused, and what it loaded is frozen (`gc.freeze`): the ~120,000 objects of
        SQLAlchemy, networkx, loguru and the runtime live until the process exits, yet the
        collector would walk them some 180 times while they load (~50 ms) and again in
        every full collection, the ones at exit included (~90 ms). Frozen, they are never
        walked; the price is that the few cycles that became garbage during the import are
        never freed. Never in someone else's process (tests call `main(argv)` in theirs):
        freezing would keep that program's garbage for good.
        """
        if not own_process or self.module in sys.modules:
            module = importlib.import_module(self.module)
        else:
            collecting = gc.isenabled()
            gc.disable()
            try:
                module = importlib.import_module(self.module)
                gc.freeze()
            finally:
                if collecting:
                    gc.enable()
        handle: Callable[[argparse.Namespace], int] = getattr(module, self.function)
        return handle

    def __call__(self, args: argparse.Namespace) -> int:
        return self.load()(args)

    def __repr__(self) -> str:
        return f"Handler({self.module}:{self.function})"


def register(sub: argparse._SubParsersAction, config_option: ConfigOption) -> None:
    """Add every command to `sub`, in the order of `xos-runtime --help`."""
    _register_run(sub, config_option)
    _register_inspect(sub, config_option)
    _register_objects(sub, config_option)


def _register_run(sub: argparse._SubParsersAction, config_option: ConfigOption) -> None:
    p = sub.add_parser("run", help="run the synchronizer (every engine)")
    config_option(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass of each engine, then exit")
    mode.add_argument(
        "--until-idle", action="store_true", help="passes until nothing is ready, then exit"
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="with --until-idle: give up after S seconds (exit 1)",
    )
    p.set_defaults(handler=Handler("xos_runtime.cli.run", "handle"))


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def _register_inspect(sub: argparse._SubParsersAction, config_option: ConfigOption) -> None:
    module = "xos_runtime.cli.inspect"
    p = sub.add_parser("check", help="validate config, plugins, models and graph")
    config_option(p)
    p.set_defaults(handler=Handler(module, "check"), error_exit=1)

    p = sub.add_parser("plugins", help="list the plugins that were discovered")
    config_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=Handler(module, "plugins"))

    p = sub.add_parser("graph", help="print the model dependency graph and step order")
    config_option(p)
    p.add_argument("--format", choices=("text", "dot", "json"), default="text")
    p.set_defaults(handler=Handler(module, "graph"))

    p = sub.add_parser("status", help="objects pending, in error or backing off")
    config_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=Handler(module, "status"))


def _register_objects(sub: argparse._SubParsersAction, config_option: ConfigOption) -> None:
    p = sub.add_parser("objects", help="read and change the objects in the store")
    config_option(p)  # `objects -C FILE list ...` as well as `objects list -C FILE ...`
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    helps = {
        "list": "list live objects (optionally filtered by field=value)",
        "show": "show one object",
        "create": "create an object from field=value pairs",
        "update": "change fields of an object",
        "delete": "delete an object (soft delete, as in XOS)",
    }
    handler = Handler("xos_runtime.cli.objects", "handle")
    for action, text in helps.items():
        a = actions.add_parser(action, help=text)
        config_option(a, inner=True)
        a.add_argument("--json", action="store_true", help="print JSON")
        a.add_argument("model", metavar="MODEL")
        if action in _WITH_ID:
            a.add_argument("id", metavar="ID", type=int)
        if action != "show" and action != "delete":
            a.add_argument("fields", metavar="field=value", nargs="*")
        a.set_defaults(handler=handler)
