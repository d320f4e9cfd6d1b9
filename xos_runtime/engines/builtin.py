"""The built-in engines, registered as a plugin of the same hook contract as any other.

The host registers this module first; `xos_runtime_engines` builds the engines the loaded
plugins need, in the order a pass runs them: pull, events, policies, sync (then delete).
The pull and event engines are imported only when a plugin has pull or event steps: most
synchronizers have neither, and every command that loads the runtime imports this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from xos_runtime.engines.policy import PolicyEngine
from xos_runtime.engines.sync.engine import SyncEngine
from xos_runtime.hookspecs import hookimpl

if TYPE_CHECKING:
    from xos_runtime.engines.outcome import Outcome


def _observed_leaves(runtime: Any, names: Any) -> set[str]:
    """The models named and all their sub-models."""
    out: set[str] = set()
    for name in names:
        if name in runtime.models:
            out.update(runtime.models.descendants(name))
    return out


def _event_step_names(plugins: Any) -> list[tuple[str, Any]]:
    """`(name, class)` of each event step; the name (the entry point's, or the class name for
    a module of `event_steps_dir`) makes its consumer group, `module:Class` when two share it."""
    infos = plugins.table.of_kind("event_step")
    names = [info.name for info in infos]
    return [
        (info.name if names.count(info.name) == 1 else info.target, info.cls_or_module)
        for info in infos
    ]


@hookimpl
def xos_runtime_engines(runtime: Any) -> list[Any]:
    """The pull, event, policy and sync engines over the discovered plugins that need them."""
    engines: list[Any] = []
    plugins, settings, hook = runtime.plugins, runtime.settings, runtime.hook
    synced = _observed_leaves(
        runtime, [m for step in plugins.sync_steps for m in step.observed_model_names()]
    )
    policed = _observed_leaves(runtime, [p.model_name for p in plugins.model_policies])

    lease = runtime.lease if runtime.shares_work else None
    if plugins.pull_steps:
        from xos_runtime.engines.pull import PullEngine

        def pull_outcome(step: Any, outcome: Outcome) -> None:
            hook.xos_runtime_pull_outcome(step=step, outcome=outcome)

        engines.append(
            PullEngine(
                runtime.accessor,
                plugins.pull_steps,
                settings.pull,
                shared_by=lease.owner if lease is not None else None,
                on_outcome=pull_outcome,
                clock=runtime.clock,
            )
        )
    event_steps = _event_step_names(plugins)
    if event_steps:
        from xos_runtime.engines.events.engine import EventEngine

        def event_outcome(step: Any, event: Any, outcome: Outcome) -> None:
            hook.xos_runtime_event_outcome(step=step, event=event, outcome=outcome)

        engines.append(
            EventEngine(
                runtime.accessor,
                event_steps,
                runtime.event_bus,
                group_prefix=settings.name,
                settings=settings.events,
                on_outcome=event_outcome,
                clock=runtime.clock,
            )
        )
    if plugins.model_policies:

        def policy_outcome(policy: Any, obj: Any, action: str, outcome: Outcome) -> None:
            hook.xos_runtime_policy_outcome(policy=policy, obj=obj, action=action, outcome=outcome)

        engines.append(
            PolicyEngine(
                runtime.accessor,
                plugins.model_policies,
                settings.policies,
                poll_interval=settings.sync.poll_interval,
                synced_models=synced,
                lease=lease,
                on_outcome=policy_outcome,
                clock=runtime.clock,
            )
        )
    if plugins.sync_steps:

        def sync_outcome(step: Any, obj: Any, outcome: Outcome) -> None:
            hook.xos_runtime_sync_outcome(step=step, obj=obj, outcome=outcome)

        engines.append(
            SyncEngine(
                runtime.accessor,
                plugins.sync_steps,
                runtime.graph,
                settings.sync,
                held_for_policies=policed,
                on_outcome=sync_outcome,
                lease=lease,
                clock=runtime.clock,
            )
        )
    return engines
