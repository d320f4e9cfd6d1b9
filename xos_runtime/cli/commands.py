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

_OBJECT_DESCRIPTIONS = {
    "list": "List the live objects of MODEL (and of its sub-models), optionally only those "
    "whose fields equal the field=value pairs given.",
    "show": "Show every field of one object, bookkeeping fields included.",
    "create": "Create an object from field=value pairs; a link is set as name=<id>.",
    "update": "Change fields of an object; the change makes it pending for the sync steps.",
    "delete": "Delete an object: a soft delete, as in XOS; its delete_record runs next, then "
    "the row is purged. Objects whose required link points at it are deleted too.",
}

_OBJECT_EXAMPLES = {
    "list": "xos-runtime objects list -C config.yaml Site enabled=true",
    "show": "xos-runtime objects show -C config.yaml --json Site 1",
    "create": "xos-runtime objects create -C config.yaml User email=a@example.org site=1",
    "update": "xos-runtime objects update -C config.yaml Site 1 quota=10",
    "delete": "xos-runtime objects delete -C config.yaml Site 1",
}


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


#: Exit codes every command shares (contract section 7); a command adds its own first.
_EXIT_USAGE = "2  bad usage, configuration or input (a missing object too), or a broken plugin"


def _add(
    sub: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    examples: tuple[str, ...],
    exits: tuple[str, ...] = ("0  success",),
    usage_exit: str = _EXIT_USAGE,
) -> argparse.ArgumentParser:
    """A command's parser, whose `--help` says what it does, shows it used, and lists the
    exit codes a script must handle."""
    lines = ["examples:", *(f"  {e}" for e in examples), "", "exit codes:"]
    lines += [f"  {e}" for e in (*exits, usage_exit)]
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog="\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def register(sub: argparse._SubParsersAction, config_option: ConfigOption) -> None:
    """Add every command to `sub`, in the order of `xos-runtime --help`."""
    _register_run(sub, config_option)
    _register_inspect(sub, config_option)
    _register_objects(sub, config_option)
    _register_events(sub, config_option)
    _register_core(sub, config_option)


def _register_run(sub: argparse._SubParsersAction, config_option: ConfigOption) -> None:
    p = _add(
        sub,
        "run",
        help="run the synchronizer (every engine)",
        description="Run the synchronizer: every engine (sync, policies, pull, events) until "
        "SIGTERM or SIGINT, then drain; or one pass (--once), or passes until nothing is "
        "ready (--until-idle).",
        examples=(
            "xos-runtime run -C config.yaml",
            "xos-runtime run -C config.yaml --until-idle --timeout 60",
        ),
        exits=(
            "0  success (nothing left in error)",
            "1  objects left in error (--once, --until-idle), or --timeout expired",
        ),
    )
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
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="with --until-idle on a terminal: no progress bar (log lines as configured)",
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
    p = _add(
        sub,
        "check",
        help="validate config, plugins, models and graph",
        description="Load the config, the plugins, the models and the dependency graph, and "
        "check that the models fit the store, changing nothing.",
        examples=("xos-runtime check -C config.yaml",),
        exits=(
            "0  the check passed",
            "1  the check failed: config, plugins, models or store (the reason on stderr)",
        ),
        usage_exit="2  bad usage (the command line itself)",
    )
    config_option(p)
    p.set_defaults(handler=Handler(module, "check"), error_exit=1)

    p = _add(
        sub,
        "plugins",
        help="list the plugins that were discovered",
        description="List the plugins the config runs: kind, entry point or file, "
        "module:Class, the models they observe, distribution and version.",
        examples=(
            "xos-runtime plugins -C config.yaml",
            "xos-runtime plugins -C config.yaml --json",
        ),
    )
    config_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=Handler(module, "plugins"))

    p = _add(
        sub,
        "graph",
        help="print the model dependency graph and step order",
        description="Print the model dependency graph (text, Graphviz dot or JSON), the sync "
        "order and the sync steps of each model.",
        examples=(
            "xos-runtime graph -C config.yaml",
            "xos-runtime graph -C config.yaml --format dot | dot -Tsvg > graph.svg",
        ),
    )
    config_option(p)
    p.add_argument("--format", choices=("text", "dot", "json"), default="text")
    p.set_defaults(handler=Handler(module, "graph"))

    p = _add(
        sub,
        "status",
        help="objects pending, in error or backing off",
        description="Objects per model by state, then each object that is pending, in error, "
        "deferred, held back or backing off, with its message; and the processes working on "
        "the store.",
        examples=("xos-runtime status -C config.yaml", "xos-runtime status -C config.yaml --json"),
    )
    config_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=Handler(module, "status"))

    p = _add(
        sub,
        "plan",
        help="what the next pass would do, changing nothing",
        description="A dry run of the next pass: the objects that would be synced or deleted, "
        "by model, in waves of the dependency DAG; what is held back and by what (the root "
        "cause); what backs off until when; which policies would run. No step or policy is "
        "called and nothing is written.",
        examples=("xos-runtime plan -C config.yaml", "xos-runtime plan -C config.yaml --json"),
        exits=("0  the plan was printed (objects in error included)",),
    )
    config_option(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=Handler("xos_runtime.cli.plan", "plan"))


def _register_objects(sub: argparse._SubParsersAction, config_option: ConfigOption) -> None:
    p = _add(
        sub,
        "objects",
        help="read and change the objects in the store",
        description="List, show, create, update and delete objects of the store's models.",
        examples=(
            "xos-runtime objects -C config.yaml list Site",
            "xos-runtime objects -C config.yaml create Site name=site1",
        ),
    )
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
        a = _add(
            actions,
            action,
            help=text,
            description=_OBJECT_DESCRIPTIONS[action],
            examples=(_OBJECT_EXAMPLES[action],),
        )
        config_option(a, inner=True)
        a.add_argument("--json", action="store_true", help="print JSON")
        a.add_argument("model", metavar="MODEL")
        if action in _WITH_ID:
            a.add_argument("id", metavar="ID", type=int)
        if action != "show" and action != "delete":
            a.add_argument("fields", metavar="field=value", nargs="*")
        a.set_defaults(handler=handler)


def _register_events(sub: argparse._SubParsersAction, config_option: ConfigOption) -> None:
    p = _add(
        sub,
        "events",
        help="publish messages to the event bus",
        description="Publish messages to the config's event bus (event_bus): the store's "
        "own log (kind store, the default), which the event steps of a `run` on the same "
        "store handle, or Kafka.",
        examples=(
            'xos-runtime events -C config.yaml publish sites \'{"name":"east"}\'',
            'xos-runtime events publish -C config.yaml --key east sites \'{"name":"east"}\'',
        ),
    )
    config_option(p)  # `events -C FILE publish ...` as well as `events publish -C FILE ...`
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    a = _add(
        actions,
        "publish",
        help="publish one message",
        description="Publish one message (VALUE as UTF-8 text) to TOPIC and print where it "
        "went: topic, partition and offset. On the store's bus it needs no `run`: a store "
        "no process opened yet is created, and a running `run` is woken at once.",
        examples=(
            'xos-runtime events publish -C config.yaml --key east sites \'{"name":"east"}\'',
        ),
        exits=("0  published", "1  the bus did not take the message (Kafka away, say)"),
    )
    config_option(a, inner=True)
    a.add_argument("--key", metavar="K", help="the message key (UTF-8 text)")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.add_argument("topic", metavar="TOPIC")
    a.add_argument("value", metavar="VALUE")
    a.set_defaults(handler=Handler("xos_runtime.cli.events", "publish"))


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {text!r}")
    return value


def _register_core(sub: argparse._SubParsersAction, config_option: ConfigOption) -> None:
    module = "xos_runtime.cli.core"
    p = _add(
        sub,
        "core",
        help="serve the XOS core API over the store; its users and tokens",
        description="The XOS core: its REST API over the config's store (serve), and the "
        "users and tokens that may use it.",
        examples=(
            "xos-runtime core -C config.yaml serve",
            "xos-runtime core user add -C config.yaml alice",
        ),
    )
    config_option(p)  # `core -C FILE serve` as well as `core serve -C FILE`
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    a = _add(
        actions,
        "serve",
        help="serve the XOS REST API (/xosapi/v1/...) over the store",
        description="Serve the XOS REST API over the store the config names (SQLite or "
        "PostgreSQL): /xosapi/v1/<app>/<plural>[/<id>], /xosapi/v1/version, /healthz and "
        "/openapi.json; TLS when core.tls_cert and core.tls_key are set. Prints "
        "'serving on URL' once it listens; runs until SIGINT or SIGTERM.",
        examples=("xos-runtime core serve -C config.yaml --port 8000",),
    )
    config_option(a, inner=True)
    a.add_argument("--host", metavar="H", help="address to listen on (default: core.host)")
    a.add_argument(
        "--port", metavar="P", type=_port, help="port; 0 picks a free one (default: core.port)"
    )
    a.set_defaults(handler=Handler(module, "serve"))

    u = _add(
        actions,
        "user",
        help="the users of the core",
        description="Add users of the core (their passwords are stored hashed).",
        examples=("xos-runtime core user add -C config.yaml alice",),
    )
    config_option(u, inner=True)
    user_actions = u.add_subparsers(dest="user_action", metavar="ACTION")
    user_actions.required = True
    a = _add(
        user_actions,
        "add",
        help="add a user (or set its password and role)",
        description="Add a user of the core, or give an existing one a new password and "
        "role. The password is asked at a prompt, or read as one line of standard input "
        "with --password-stdin; never from the command line. Creates the store and its user "
        "table when they do not exist yet.",
        examples=(
            "xos-runtime core user add -C config.yaml alice",
            'echo "$PW" | xos-runtime core user add -C config.yaml --synchronizer '
            "--password-stdin vsg",
        ),
    )
    config_option(a, inner=True)
    a.add_argument("name", metavar="NAME")
    a.add_argument(
        "--synchronizer",
        action="store_true",
        help="the synchronizer role: may write feedback fields, claim work, load models",
    )
    a.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    a.set_defaults(handler=Handler(module, "user_add"))

    t = _add(
        actions,
        "token",
        help="bearer tokens of the core's users",
        description="Make bearer tokens for the core's users.",
        examples=("xos-runtime core token create -C config.yaml alice",),
    )
    config_option(t, inner=True)
    token_actions = t.add_subparsers(dest="token_action", metavar="ACTION")
    token_actions.required = True
    a = _add(
        token_actions,
        "create",
        help="make a bearer token for a user (printed once)",
        description="Make a bearer token for user NAME and print it; only its digest is "
        "kept, so it cannot be shown again.",
        examples=("xos-runtime core token create -C config.yaml alice",),
    )
    config_option(a, inner=True)
    a.add_argument("name", metavar="NAME")
    a.set_defaults(handler=Handler(module, "token_create"))
