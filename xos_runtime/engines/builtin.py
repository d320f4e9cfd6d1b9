"""The built-in engines, registered as a plugin of the same hook contract as any other.

The host registers this module first; `xos_runtime_engines` builds the engines the loaded
plugins need (no sync steps, no sync engine).
"""

from __future__ import annotations

from typing import Any

from xos_runtime.engines.outcome import Outcome
from xos_runtime.engines.sync import SyncEngine, SyncOptions
from xos_runtime.hookspecs import hookimpl


@hookimpl
def xos_runtime_engines(runtime: Any) -> list[Any]:
    """The sync engine over the discovered sync steps (when there are any)."""
    engines: list[Any] = []
    steps = runtime.plugins.sync_steps
    if steps:
        s = runtime.settings.sync
        options = SyncOptions(
            workers=s.workers, timeout=s.timeout, poll_interval=s.poll_interval, backoff=s.backoff
        )

        def report(step: Any, obj: Any, outcome: Outcome) -> None:
            runtime.hook.xos_runtime_sync_outcome(step=step, obj=obj, outcome=outcome)

        engines.append(
            SyncEngine(
                runtime.accessor,
                steps,
                runtime.graph,
                options,
                on_outcome=report,
                clock=runtime.clock,
            )
        )
    return engines
