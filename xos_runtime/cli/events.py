"""`xos-runtime events publish TOPIC VALUE [--key K]`: one message to the config's event bus.

With `accessor.endpoint: http(s)://...`, to the core's (`POST /xosapi/v1/events/<topic>`).

Its arguments are declared in `cli.commands`; this module is imported when `events` runs.
"""

from __future__ import annotations

import argparse
import sys

from xos_runtime.cli.common import is_core, load_runtime, print_json, settings_for
from xos_runtime.config import topic_name_error
from xos_runtime.exceptions import XosRuntimeError


def publish(args: argparse.Namespace) -> int:
    error = topic_name_error(args.topic)
    if error is not None:
        print(f"xos-runtime: error: TOPIC: {error}", file=sys.stderr)
        return 2
    settings = settings_for(args, quiet=True)
    if is_core(settings):  # the core's bus: the log in its store
        from xos_runtime.store.remote import open_settings

        remote = open_settings(settings)
        try:
            where: tuple[int, int] | None = remote.publish_event(
                args.topic, args.value, key=args.key
            )
        finally:
            remote.close()
    else:
        runtime = load_runtime(args, models_optional=True)  # a bus needs no models
        try:
            try:
                where = runtime.event_bus.publish(args.topic, args.key, args.value)
            except XosRuntimeError:
                raise
            except Exception as exc:
                text = str(exc).strip()
                reason = text.splitlines()[0] if text else type(exc).__name__
                print(
                    f"xos-runtime: error: cannot publish to {args.topic}: {reason}",
                    file=sys.stderr,
                )
                return 1
        finally:
            runtime.close()
    partition, offset = where if where is not None else (None, None)
    if args.json:
        print_json({"topic": args.topic, "partition": partition, "offset": offset})
    else:
        print(f"{args.topic} partition {partition} offset {offset}")
    return 0
