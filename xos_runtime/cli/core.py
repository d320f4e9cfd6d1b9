"""`xos-runtime core serve/user add/token create`: the XOS core over the config's store.

Its arguments are declared in `cli.commands`; this module is imported when `core` runs.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from xos_runtime.cli.common import load_runtime, settings_for
from xos_runtime.exceptions import ConfigError, StoreError
from xos_runtime.host import Runtime


def _core_store(args: argparse.Namespace, *, quiet: bool = True) -> Runtime:
    """The runtime of the store a core serves: a database (the models synchronizers loaded
    into it served beside the config's; none at all is fine), never another core."""
    settings = settings_for(args, quiet=True)
    if settings.accessor.remote:
        raise ConfigError(
            "the core commands need a database (sqlite:///... or postgresql://...), "
            f"not a core: {settings.accessor.endpoint}",
            file=settings.source,
            key="accessor.endpoint",
        )
    return load_runtime(args, quiet=quiet, keep_stored_models=True, models_optional=True)


def serve(args: argparse.Namespace) -> int:
    from xos_runtime.core.server import serve as serve_core

    runtime = _core_store(args, quiet=False)
    try:
        serve_core(runtime.settings, runtime.accessor, host=args.host, port=args.port)
    finally:
        runtime.close()
    return 0


def _password(args: argparse.Namespace) -> str:
    """One line of standard input (`--password-stdin`), or asked twice at a prompt."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if password and getpass.getpass("again: ") != password:
            raise StoreError(f"user {args.name}: the two passwords differ")
    if not password:
        raise StoreError(f"user {args.name}: the password is empty")
    return password


def user_add(args: argparse.Namespace) -> int:
    from xos_runtime.core.users import Role, Users

    password = _password(args)
    runtime = _core_store(args)
    try:
        role: Role = "synchronizer" if args.synchronizer else "user"
        Users(runtime.accessor.store).add(args.name, password, role)
    finally:
        runtime.close()
    print(f"user {args.name} ({role}) saved")
    return 0


def token_create(args: argparse.Namespace) -> int:
    from xos_runtime.core.users import Users

    runtime = _core_store(args)
    try:
        token = Users(runtime.accessor.store).create_token(args.name)
    finally:
        runtime.close()
    print(token)
    return 0
